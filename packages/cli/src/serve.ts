/**
 * `kvmgr serve`: the KV- and SLO-aware OpenAI gateway (`@kvmgr/gateway`) in front of engine
 * endpoints, from a YAML file (`--config`) and/or flags (flags override the file).
 */
import { readFileSync } from 'node:fs';
import { KvmgrError } from '@kvmgr/core';
import { type ResolvedGatewayConfig, createGateway, readGatewayConfigYaml, resolveGatewayConfig } from '@kvmgr/gateway';

/** Flags of `kvmgr serve` as commander gives them. */
export interface ServeOptions {
  config?: string;
  endpoint?: string[];
  port?: number;
  host?: string;
  routing?: string;
  model?: string;
  logLevel?: string;
  /** `--redis redis://host:port`: share index and load with other replicas (docs/gateway-replicas.md). */
  redis?: string;
}

/**
 * The gateway configuration of a `kvmgr serve` command line: the file's object form, with the
 * flags written over it (`--endpoint` replaces the file's endpoint list), then validated.
 *
 * @param opts - the flags.
 * @param readText - reads the `--config` file. @default fs.readFileSync(path, 'utf8')
 * @throws KvmgrError `KVMGR_NOT_FOUND` when the file cannot be read; `KVMGR_BAD_CONFIG` (one line,
 *   starting with the bad key) when the merged configuration is invalid or names no endpoint.
 */
export function serveConfig(opts: ServeOptions, readText: (path: string) => string = (p) => readFileSync(p, 'utf8')): ResolvedGatewayConfig {
  const cfg = gatewayConfigFromFlags(opts, readText);
  if (cfg.endpoints.length === 0) {
    throw new KvmgrError('KVMGR_BAD_CONFIG', 'endpoints: no endpoint; give --endpoint URL (repeatable) or endpoints: in --config (more can be added at run time with POST /admin/endpoints only once one exists)');
  }
  return cfg;
}

/**
 * The gateway configuration of the flags `kvmgr serve` and `kvmgr epp` share: `--config`'s
 * object form with `--port`, `--host`, `--log-level` written into `server`, `--endpoint`
 * replacing the file's endpoint list, `--routing`, `--model` and `--redis` over the file's;
 * validated. An empty endpoint list is the caller's to judge (`epp` may take them from pods).
 *
 * @param opts - the shared flags.
 * @param readText - reads the `--config` file.
 * @throws KvmgrError `KVMGR_NOT_FOUND` when the file cannot be read; `KVMGR_BAD_CONFIG` (one line,
 *   starting with the file and the bad key) when the merged configuration is invalid.
 */
export function gatewayConfigFromFlags(opts: ServeOptions, readText: (path: string) => string): ResolvedGatewayConfig {
  let base: Record<string, unknown> = {};
  if (opts.config !== undefined) {
    let text: string;
    try {
      text = readText(opts.config);
    } catch (e) {
      throw new KvmgrError('KVMGR_NOT_FOUND', `--config ${opts.config}: cannot read the file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { cause: e });
    }
    try {
      base = readGatewayConfigYaml(text);
    } catch (e) {
      throw new KvmgrError('KVMGR_BAD_CONFIG', `${opts.config}: ${(e as Error).message}`, { cause: e });
    }
  }
  const server = { ...((base['server'] as Record<string, unknown> | undefined) ?? {}) };
  if (opts.port !== undefined) server['port'] = opts.port;
  if (opts.host !== undefined) server['host'] = opts.host;
  if (opts.logLevel !== undefined) server['logLevel'] = opts.logLevel;
  const merged: Record<string, unknown> = { ...base, server };
  if (opts.endpoint !== undefined && opts.endpoint.length > 0) merged['endpoints'] = opts.endpoint.map((url) => ({ url }));
  if (opts.routing !== undefined) merged['routing'] = opts.routing;
  if (opts.model !== undefined) merged['model'] = opts.model;
  if (opts.redis !== undefined) merged['redis'] = typeof base['redis'] === 'object' && base['redis'] !== null ? { ...(base['redis'] as Record<string, unknown>), url: opts.redis } : opts.redis;
  try {
    return resolveGatewayConfig(merged);
  } catch (e) {
    if (opts.config === undefined) throw e;
    throw new KvmgrError('KVMGR_BAD_CONFIG', `${opts.config}: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * Runs the gateway until SIGINT/SIGTERM, then closes it.
 *
 * @param opts - the flags.
 * @param io - where the one-line "listening" notice goes (logs go to stdout as JSON lines).
 */
export async function runServe(opts: ServeOptions, io: { err: (text: string) => void } = { err: (t) => process.stderr.write(t) }): Promise<void> {
  const cfg = serveConfig(opts);
  const gw = await createGateway(cfg);
  io.err(`kvmgr serve: listening on ${gw.url} (OpenAI API at ${gw.url}/v1), ${cfg.endpoints.length} endpoint(s); Ctrl-C stops\n`);
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  await gw.close();
}
