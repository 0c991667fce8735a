/**
 * `kvmgr engine`: one vLLM-compatible engine server (`@kvmgr/engine-server`: the kvmgr engine
 * core on the wall clock), or with `--instances N` a local fleet of N child processes on
 * consecutive ports, each stopped when the parent exits.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { endpointForDpRank } from '@kvmgr/adapter-vllm';
import { KvmgrError } from '@kvmgr/core';
import { type EngineServerOptions, createEngineServer, parseKvEventsConfig } from '@kvmgr/engine-server';
import { waitForSignal } from './signals.js';

/** Flags of `kvmgr engine` as commander gives them. */
export interface EngineOptions {
  model?: string;
  servedModelName?: string;
  tokenizer?: string;
  gpu?: string;
  tp?: number;
  profile?: string;
  host?: string;
  port?: number;
  timeScale?: number;
  kvEventsConfig?: string;
  numGpuBlocks?: number;
  maxModelLen?: number;
  seed?: number;
  echo?: boolean;
  maxWaiting?: number;
  failRate?: number;
  stallMs?: number;
  dieAfter?: number;
  role?: 'both' | 'prefill' | 'decode';
  instances?: number;
  basePort?: number;
  logLevel?: string;
}

/** The server options of a command line (one instance). */
export function engineServerOptions(o: EngineOptions): EngineServerOptions {
  const out: Record<string, unknown> = {
    model: o.model ?? 'Llama-3.1-8B-Instruct',
    gpu: o.gpu ?? 'H100',
    tp: o.tp ?? 1,
    profile: o.profile ?? 'vllm-default',
    host: o.host ?? '127.0.0.1',
    port: o.port ?? 8000,
    timeScale: o.timeScale ?? 1,
    logLevel: o.logLevel ?? 'info',
  };
  const copy: (keyof EngineOptions & keyof EngineServerOptions)[] = ['servedModelName', 'tokenizer', 'kvEventsConfig', 'numGpuBlocks', 'maxModelLen', 'seed', 'echo', 'maxWaiting', 'failRate', 'stallMs', 'dieAfter'];
  for (const k of copy) if (o[k] !== undefined) out[k] = o[k];
  if (o.role !== undefined) out['pd'] = { role: o.role };
  return out as EngineServerOptions;
}

/** Runs one server until SIGINT/SIGTERM (graceful close), or exits 1 when `--die-after` fires. */
async function runOne(o: EngineOptions, err: (t: string) => void): Promise<void> {
  const server = await createEngineServer({ ...engineServerOptions(o), onDie: () => process.exit(1) });
  const c = server.config;
  err(
    `kvmgr engine: ${c.servedModelName} on ${o.gpu ?? 'H100'} (${c.numGpuBlocks} KV blocks of ${c.blockSize}, max_model_len ${c.maxModelLen}, tokenizer ${c.tokenizer}, ${c.latency}, time scale ${c.timeScale}) listening on ${server.url}` +
      `${server.kvEventsEndpoint ? `, KV events ${server.kvEventsEndpoint}${server.replayEndpoint ? ` (replay ${server.replayEndpoint})` : ''}` : ''}; Ctrl-C stops\n`,
  );
  await waitForSignal();
  await server.close();
}

/** The argv of fleet member `i`: the same flags, its own port, KV-event ports shifted by `i` (as vLLM shifts DP ranks). */
export function fleetMemberArgs(argv: readonly string[], i: number, basePort: number, kvEventsConfig: string | undefined): string[] {
  const out: string[] = [];
  for (let k = 0; k < argv.length; k++) {
    const a = argv[k] as string;
    const [flag] = a.split('=', 1) as [string];
    if (['--instances', '--base-port', '--port', '--kv-events-config'].includes(flag)) {
      if (!a.includes('=')) k++;
      continue;
    }
    out.push(a);
  }
  out.push('--port', String(basePort + i));
  if (kvEventsConfig !== undefined) {
    const cfg = parseKvEventsConfig(kvEventsConfig);
    const shifted = { ...cfg, endpoint: endpointForDpRank(cfg.endpoint, i), ...(cfg.replay_endpoint ? { replay_endpoint: endpointForDpRank(cfg.replay_endpoint, i) } : {}) };
    out.push('--kv-events-config', JSON.stringify(shifted));
  }
  return out;
}

/** Starts `--instances` children and stops them all on SIGINT/SIGTERM or when one dies. */
async function runFleet(o: EngineOptions, err: (t: string) => void): Promise<void> {
  const n = o.instances as number;
  const basePort = o.basePort ?? o.port ?? 8000;
  const script = process.argv[1];
  if (script === undefined) throw new KvmgrError('KVMGR_INVALID_STATE', 'cannot find the kvmgr script to start fleet members');
  const engineAt = process.argv.indexOf('engine');
  const flags = process.argv.slice(engineAt + 1);
  const children: ChildProcess[] = [];
  const exited: Promise<void>[] = [];
  let stopping = false;
  let anyDied!: () => void;
  const died = new Promise<void>((r) => {
    anyDied = r;
  });
  for (let i = 0; i < n; i++) {
    const args = [...process.execArgv, script, 'engine', ...fleetMemberArgs(flags, i, basePort, o.kvEventsConfig)];
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit'] });
    children.push(child);
    exited.push(
      new Promise((resolve) => {
        child.once('exit', (code, signal) => {
          if (!stopping) {
            err(`kvmgr engine: instance ${i} (port ${basePort + i}) exited (${signal ?? `code ${code}`}); stopping the fleet\n`);
            anyDied();
          }
          resolve();
        });
      }),
    );
  }
  err(`kvmgr engine: fleet of ${n} on ports ${basePort}..${basePort + n - 1}; Ctrl-C stops them all\n`);
  await Promise.race([waitForSignal(), died]);
  stopping = true;
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
  await Promise.all(exited);
}

/**
 * Runs `kvmgr engine`.
 *
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` / `KVMGR_BAD_CONFIG` for bad flags (unknown model,
 *   GPU or profile, bad `--kv-events-config`); `KVMGR_UNAVAILABLE` when a port cannot be bound.
 */
export async function runEngine(o: EngineOptions, io: { err: (text: string) => void } = { err: (t) => process.stderr.write(t) }): Promise<void> {
  if (o.kvEventsConfig !== undefined) parseKvEventsConfig(o.kvEventsConfig);
  if ((o.instances ?? 1) > 1) return runFleet(o, io.err);
  return runOne(o, io.err);
}
