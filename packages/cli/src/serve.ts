/**
 * `kvmgr serve`: the KV- and SLO-aware OpenAI gateway (`@kvmgr/gateway`) in front of engine
 * endpoints, from a YAML file (`--config`) and/or flags (flags override the file). With
 * `--replicas N`, N gateway processes (a `node:cluster`: the primary hands connections to the
 * workers in turn) share one port and their state through `--redis`.
 */
import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import { KvmgrError } from '@kvmgr/core';
import { type ResolvedGatewayConfig, createGateway, readGatewayConfigYaml, resolveGatewayConfig } from '@kvmgr/gateway';
import { waitForSignal } from './signals.js';

/** Flags of `kvmgr serve` as commander gives them. */
export interface ServeOptions {
  config?: string;
  endpoint?: string[];
  port?: number;
  host?: string;
  routing?: string;
  model?: string;
  /** `--tokenizer NAME`: the tokenizer of prompt keys (`tokenizer` of the config). */
  tokenizer?: string;
  logLevel?: string;
  /** `--redis redis://host:port`: share index and load with other replicas (docs/gateway-replicas.md). */
  redis?: string;
  /** `--replicas N`: N local replicas (processes) behind one port, sharing state through Redis. @default 1 */
  replicas?: number;
}

/** Environment variable that tells a cluster worker which replica it is. */
const REPLICA_ENV = 'KVMGR_SERVE_REPLICA';

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
 * replacing the file's endpoint list, `--routing`, `--model`, `--tokenizer` and `--redis` over the file's;
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
  if (opts.tokenizer !== undefined) merged['tokenizer'] = opts.tokenizer;
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
  const replica = process.env[REPLICA_ENV];
  if (cluster.isWorker && replica !== undefined) return runReplica(opts, Number(replica));
  const cfg = serveConfig(opts);
  const n = opts.replicas ?? 1;
  if (n > 1) return runReplicas(cfg, n, io.err);
  const gw = await createGateway(cfg);
  io.err(`kvmgr serve: listening on ${gw.url} (OpenAI API at ${gw.url}/v1), ${cfg.endpoints.length} endpoint(s); Ctrl-C stops\n`);
  await waitForSignal();
  await gw.close();
}


/** What a replica tells the primary once it listens. */
interface ListeningMessage {
  readonly kvmgrServe: 'listening';
  readonly index: number;
  readonly url: string;
  readonly replicaId: string;
}

/**
 * `--replicas N`: forks N cluster workers that each run the gateway on the same host and port
 * (port 0: the same free port for all), with replica ids `<id>-r<i>`; prints one line once all
 * listen; on SIGINT/SIGTERM stops every worker (each closes its gateway, releasing its leases
 * and in-flight entries in Redis) and returns when all have exited. A worker that exits on its
 * own stops the others.
 *
 * @throws KvmgrError `KVMGR_BAD_CONFIG` when no Redis is configured (replicas without shared
 *   state would route blind to each other); `KVMGR_UNAVAILABLE` when a replica exits before it
 *   listens or after, unasked.
 */
async function runReplicas(cfg: ResolvedGatewayConfig, n: number, err: (text: string) => void): Promise<void> {
  if (cfg.redis === undefined) {
    throw new KvmgrError('KVMGR_BAD_CONFIG', `--replicas ${n}: the replicas share their index and load through Redis; give --redis redis://HOST:PORT (or redis: in --config)`);
  }
  const workers = Array.from({ length: n }, (_, i) => cluster.fork({ [REPLICA_ENV]: String(i) }));
  const exits = workers.map(
    (w, i) =>
      new Promise<{ i: number; code: number | null; signal: string | null }>((resolve) => {
        w.once('exit', (code, signal) => resolve({ i, code, signal }));
      }),
  );
  const listening = workers.map(
    (w) =>
      new Promise<ListeningMessage>((resolve) => {
        w.on('message', (m: ListeningMessage) => {
          if (m?.kvmgrServe === 'listening') resolve(m);
        });
      }),
  );
  const stopAll = async () => {
    for (const w of workers) if (w.process.exitCode === null && w.process.signalCode === null) w.process.kill('SIGTERM');
    await Promise.all(exits);
  };
  const firstExit = Promise.race(exits);
  const ready = await Promise.race([Promise.all(listening), firstExit]);
  if (!Array.isArray(ready)) {
    await stopAll();
    throw new KvmgrError('KVMGR_UNAVAILABLE', `--replicas ${n}: replica ${ready.i} exited (${ready.signal ?? `code ${ready.code}`}) before it listened`);
  }
  const url = (ready[0] as ListeningMessage).url;
  err(`kvmgr serve: ${n} replicas listening on ${url} (OpenAI API at ${url}/v1), ${cfg.endpoints.length} endpoint(s), sharing state through ${cfg.redis.url}; replicas ${ready.map((m) => m.replicaId).join(', ')}; Ctrl-C stops them all\n`);
  // a signal (undefined), or a replica that exited unasked
  const died = await Promise.race([waitForSignal().then(() => undefined), firstExit]);
  await stopAll();
  if (died !== undefined) throw new KvmgrError('KVMGR_UNAVAILABLE', `--replicas ${n}: replica ${died.i} exited (${died.signal ?? `code ${died.code}`}); stopped the others`);
}

/** One cluster worker of `--replicas`: the gateway with replica id `<id>-r<i>`, closed on SIGTERM/SIGINT. */
async function runReplica(opts: ServeOptions, index: number): Promise<void> {
  const base = serveConfig(opts);
  const cfg: ResolvedGatewayConfig = base.redis === undefined ? base : { ...base, redis: { ...base.redis, replicaId: `${base.redis.replicaId}-r${index}` } };
  const gw = await createGateway(cfg);
  const msg: ListeningMessage = { kvmgrServe: 'listening', index, url: gw.url, replicaId: cfg.redis?.replicaId ?? String(index) };
  process.send?.(msg);
  await waitForSignal();
  // Ctrl-C reaches the primary and every worker, and the primary then sends SIGTERM: finish closing
  const ignore = () => undefined;
  process.on('SIGINT', ignore);
  process.on('SIGTERM', ignore);
  await gw.close();
  cluster.worker?.disconnect();
}
