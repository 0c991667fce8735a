/**
 * Where the endpoint picker's endpoints come from besides the gateway configuration: a file of
 * pods (YAML or JSON; a list, or `{ pods: [...] }`), one entry per model-server pod with its
 * `address` (`ip:port`, what the picker answers in `x-gateway-destination-endpoint`), its engine
 * and role, and optionally its KV-event endpoints:
 *
 * ```yaml
 * - { address: 10.0.0.5:8000, engine: vllm, role: both, kvEvents: tcp://10.0.0.5:5557 }
 * - { address: 10.0.0.6:8000 }
 * ```
 *
 * Every entry becomes a gateway {@link EndpointInput} (`url: http://<address>`), so the same
 * endpoint state (scraper, KV-event subscriber, health, in-flight counts) serves both.
 */
import { KvmgrError } from '@kvmgr/core';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import type { EndpointInput } from '../config.js';

const hostPort = z.string().regex(/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'expected ip:port such as 10.0.0.5:8000');

/** One pod of a pods file. */
export const PodInputSchema = z.strictObject({
  address: hostPort,
  name: z.string().min(1).optional(),
  engine: z.enum(['vllm', 'sglang', 'tgi', 'lmdeploy', 'kvmgr']).optional(),
  role: z.enum(['both', 'prefill', 'decode']).optional(),
  /** `http` (default) or `https`: how the picker scrapes `/metrics`. */
  scheme: z.enum(['http', 'https']).optional(),
  metricsUrl: z.string().optional(),
  kvEvents: z.string().optional(),
  replay: z.string().optional(),
  blockSize: z.number().int().min(1).optional(),
  kvCapacityTokens: z.number().int().min(1).optional(),
});
/** A pod as written in a pods file. */
export type PodInput = z.infer<typeof PodInputSchema>;

function bad(key: string, message: string): KvmgrError {
  return new KvmgrError('KVMGR_BAD_CONFIG', `${key}: ${message}`, { details: { key } });
}

/** A pod entry as the gateway endpoint it is (`url: <scheme>://<address>`). */
export function podToEndpoint(p: PodInput): EndpointInput {
  const { address, scheme, ...rest } = p;
  return { ...rest, url: `${scheme ?? 'http'}://${address}` } as EndpointInput;
}

/**
 * Parses a pods file (YAML or JSON): a list of pods or `{ pods: [...] }`.
 *
 * @param text - the file's text.
 * @param file - its name, for messages. @default 'pods'
 * @returns the pods as gateway endpoint inputs.
 * @throws KvmgrError `KVMGR_BAD_CONFIG` naming the bad entry (`pods[2].address: …`), a duplicate
 *   address, or YAML that does not parse.
 */
export function parsePodsFile(text: string, file = 'pods'): EndpointInput[] {
  const doc = parseDocument(text, { logLevel: 'silent', uniqueKeys: true });
  const problem = doc.errors[0];
  if (problem !== undefined) throw bad(file, `YAML does not parse: ${problem.message.split('\n')[0]}`);
  const v: unknown = doc.toJS({ maxAliasCount: 100 }) ?? [];
  const list = Array.isArray(v) ? v : typeof v === 'object' && v !== null && Array.isArray((v as { pods?: unknown }).pods) ? (v as { pods: unknown[] }).pods : undefined;
  if (list === undefined) throw bad(file, 'expected a list of pods, or a mapping with a pods: list');
  const seen = new Map<string, number>();
  return list.map((entry, i) => {
    const r = PodInputSchema.safeParse(entry);
    if (!r.success) {
      const issue = r.error.issues[0];
      const path = (issue?.path ?? []).map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('');
      throw bad(`pods[${i}]${path}`, issue?.message ?? 'invalid');
    }
    const prev = seen.get(r.data.address);
    if (prev !== undefined) throw bad(`pods[${i}].address`, `duplicate address ${r.data.address} (also pods[${prev}])`);
    seen.set(r.data.address, i);
    return podToEndpoint(r.data);
  });
}
