/**
 * `kvmgr epp`: the gateway's routing decision as a Gateway API Inference Extension endpoint
 * picker (Envoy `ext_proc` gRPC), from a gateway YAML (`--config`) and/or flags, with endpoints
 * from `--endpoint URL …`, the config's `endpoints:`, or a pods file (`--pods`, re-read when it
 * changes).
 */
import { readFileSync } from 'node:fs';
import { KvmgrError } from '@kvmgr/core';
import { type EppConfig, createEpp, parsePodsFile } from '@kvmgr/gateway';
import { gatewayConfigFromFlags } from './serve.js';
import { waitForSignal } from './signals.js';

/** Flags of `kvmgr epp` as commander gives them. */
export interface EppOptions {
  config?: string;
  endpoint?: string[];
  pods?: string;
  grpcPort?: number;
  healthPort?: number;
  metricsPort?: number;
  host?: string;
  routing?: string;
  model?: string;
  tokenizer?: string;
  logLevel?: string;
}

/**
 * The picker configuration of a `kvmgr epp` command line: the file's object form with the flags
 * written over it (`--endpoint` replaces the file's endpoint list), validated.
 *
 * @param opts - the flags.
 * @param readText - reads `--config` and `--pods`. @default fs.readFileSync(path, 'utf8')
 * @throws KvmgrError `KVMGR_NOT_FOUND` when a file cannot be read; `KVMGR_BAD_CONFIG` (one line,
 *   starting with the bad key) when the configuration or the pods file is invalid, or when no
 *   endpoint is given at all.
 */
export function eppConfig(opts: EppOptions, readText: (path: string) => string = (p) => readFileSync(p, 'utf8')): EppConfig {
  const read = (flag: string, path: string): string => {
    try {
      return readText(path);
    } catch (e) {
      throw new KvmgrError('KVMGR_NOT_FOUND', `${flag} ${path}: cannot read the file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { cause: e });
    }
  };
  const gateway = gatewayConfigFromFlags(opts, readText);
  if (opts.pods !== undefined) parsePodsFile(read('--pods', opts.pods), opts.pods); // fails early, naming the bad entry
  if (gateway.endpoints.length === 0 && opts.pods === undefined) {
    throw new KvmgrError('KVMGR_BAD_CONFIG', 'endpoints: no endpoint; give --endpoint URL (repeatable), endpoints: in --config, or --pods FILE');
  }
  return {
    gateway,
    ...(opts.pods === undefined ? {} : { podsFile: opts.pods }),
    grpcPort: opts.grpcPort ?? 9002,
    ...(opts.healthPort === undefined ? {} : { healthPort: opts.healthPort }),
    metricsPort: opts.metricsPort ?? 9090,
  };
}

/**
 * Runs the picker until SIGINT/SIGTERM, then closes it gracefully (readiness NOT_SERVING, open
 * streams given time to finish).
 *
 * @param opts - the flags.
 * @param io - where the one-line "listening" notice goes (logs go to stdout as JSON lines).
 */
export async function runEpp(opts: EppOptions, io: { err: (text: string) => void } = { err: (t) => process.stderr.write(t) }): Promise<void> {
  const cfg = eppConfig(opts);
  const epp = await createEpp(cfg);
  const n = epp.state().endpoints.length;
  io.err(
    `kvmgr epp: ext_proc + grpc.health.v1 on ${epp.address}${epp.healthAddress === null ? '' : `, health also on ${epp.healthAddress}`}${epp.metricsUrl === null ? '' : `, metrics at ${epp.metricsUrl}`}; ${n} endpoint(s); Ctrl-C stops\n`,
  );
  await waitForSignal();
  await epp.close();
}
