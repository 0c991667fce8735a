/**
 * vLLM's ZMQ endpoint rules for KV events: which endpoints bind, the per-DP-rank endpoint, and
 * the boundary check of user-given endpoints.
 *
 * @see vllm-project/vllm:vllm/distributed/kv_events.py (ZmqEventPublisher, offset_endpoint_port)
 */
import { invalidArgument } from '@kvmgr/core';

const ENDPOINT = /^(tcp|ipc|inproc):\/\/(.+)$/;

/**
 * Checks an endpoint string: `tcp://HOST:PORT` (port 0–65535 or `*`), `ipc://PATH` or
 * `inproc://NAME`.
 *
 * @param field - what to name in the error (`endpoint`, `--replay`).
 * @param endpoint - the value given.
 * @returns the endpoint.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` otherwise.
 */
export function requireEndpoint(field: string, endpoint: unknown): string {
  const m = typeof endpoint === 'string' ? ENDPOINT.exec(endpoint) : null;
  if (!m) throw invalidArgument(field, endpoint, 'a ZMQ endpoint tcp://HOST:PORT, ipc://PATH or inproc://NAME');
  if (m[1] === 'tcp') {
    const colon = (m[2] as string).lastIndexOf(':');
    const port = (m[2] as string).slice(colon + 1);
    const host = (m[2] as string).slice(0, colon);
    if (colon <= 0 || host === '' || !(port === '*' || (/^\d{1,5}$/.test(port) && Number(port) <= 65535))) {
      throw invalidArgument(field, endpoint, 'tcp://HOST:PORT with a port in [0, 65535] or *');
    }
  }
  return endpoint as string;
}

/**
 * True when vLLM binds this endpoint (it contains `*`, `::`, `ipc://` or `inproc://`); other
 * endpoints are connected to.
 */
export function endpointBinds(endpoint: string): boolean {
  return endpoint.includes('*') || endpoint.includes('::') || endpoint.startsWith('ipc://') || endpoint.startsWith('inproc://');
}

/**
 * The endpoint of one data-parallel rank: tcp port + rank (port 0 and `*` stay as they are:
 * ephemeral), `ipc://` and `inproc://` names get a `_dp<rank>` suffix.
 *
 * @param endpoint - the rank-0 endpoint.
 * @param dpRank - data-parallel rank (≥ 0); 0 returns `endpoint` unchanged.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` on a bad endpoint or rank, or a port beyond 65535.
 */
export function endpointForDpRank(endpoint: string, dpRank: number): string {
  requireEndpoint('endpoint', endpoint);
  if (!Number.isSafeInteger(dpRank) || dpRank < 0) throw invalidArgument('dpRank', dpRank, 'a non-negative integer');
  if (dpRank === 0) return endpoint;
  if (!endpoint.startsWith('tcp://')) return `${endpoint}_dp${dpRank}`;
  const colon = endpoint.lastIndexOf(':');
  const port = endpoint.slice(colon + 1);
  if (port === '*' || port === '0') return endpoint;
  const next = Number(port) + dpRank;
  if (next > 65535) throw invalidArgument('dpRank', dpRank, `a rank that keeps the port (${port} + rank) <= 65535`);
  return `${endpoint.slice(0, colon)}:${next}`;
}
