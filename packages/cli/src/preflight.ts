/**
 * Checks replay, ab, sweep and eviction eval make before any simulation runs, so a run that
 * cannot succeed fails in milliseconds with one line (`kvmgr: error: …`, exit 2), and a run that
 * would silently do something else than asked says so once on stderr (`kvmgr: warning: …`).
 */
import { accessSync, constants, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { type EngineProfile, KvmgrError } from '@kvmgr/core';
import { PRESETS, type AnchorNode, createDefaultRegistry, parsePipeline } from '@kvmgr/scheduler-ir';
import { type Trace, cpuKvBlocks, getGpuSpec, getModelSpec, gpuKvBlocks, selectLatencyModel } from '@kvmgr/sim';

function invalid(flag: string, value: unknown, expected: string, details: Record<string, unknown> = {}): KvmgrError {
  return new KvmgrError('KVMGR_INVALID_ARGUMENT', `${flag} ${String(value)}: expected ${expected}`, { details: { flag, value, expected, ...details } });
}

/** Writes one warning line to stderr, once per distinct text in this process. */
const warned = new Set<string>();
export function warnOnce(text: string): void {
  if (warned.has(text)) return;
  warned.add(text);
  process.stderr.write(`kvmgr: warning: ${text}\n`);
}

/** Writes one note line to stderr (what the run assumed where the input said nothing). */
export function note(text: string): void {
  process.stderr.write(`kvmgr: note: ${text}\n`);
}

// ---------------------------------------------------------------------------------------------
// --out

/**
 * Checks that `--out` can take the output files, before the run: an existing path must be a
 * directory we can create files in; a new one needs its nearest existing ancestor to be a
 * writable directory. Probes by creating (and removing) a file or folder, never recursively, so
 * pseudo file systems (`/proc`) fail at once instead of looping.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` naming the path and the reason.
 */
export function checkOutDir(out: string, flag = '--out'): void {
  const dir = resolve(out);
  if (existsSync(dir)) {
    if (!statSync(dir).isDirectory()) throw invalid(flag, out, 'a directory for the output files, got an existing file');
    probe(flag, out, dir);
    return;
  }
  let parent = dirname(dir);
  while (!existsSync(parent)) {
    const up = dirname(parent);
    if (up === parent) break;
    parent = up;
  }
  let st: ReturnType<typeof statSync>;
  try {
    st = statSync(parent);
  } catch (e) {
    throw invalid(flag, out, `a path whose folders can be created (${parent}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (!st.isDirectory()) throw invalid(flag, out, `a path under a directory, but ${parent} is not a directory`);
  probe(flag, out, parent);
}

function probe(flag: string, out: string, dir: string): void {
  let tmp: string | undefined;
  try {
    accessSync(dir, constants.W_OK);
    tmp = mkdtempSync(join(dir, '.kvmgr-probe-'));
    writeFileSync(join(tmp, 'probe'), '');
  } catch (e) {
    throw invalid(flag, out, `a writable directory, cannot create files in ${dir} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  } finally {
    if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// traces

/**
 * Refuses a trace with no requests (empty, header-only, or every row skipped by `--lenient`):
 * its results would be a table of zeros.
 * @throws KvmgrError `KVMGR_BAD_TRACE` naming the file.
 */
export function requireRequests(count: number, file: string, skippedRows = 0): void {
  if (count > 0) return;
  const why = skippedRows > 0 ? `all ${skippedRows} rows were malformed and skipped (--lenient)` : 'it is empty or has only a header';
  throw new KvmgrError('KVMGR_BAD_TRACE', `${file}: no requests to replay: ${why}`, { details: { file, skippedRows } });
}

/** Mean arrival rate of a timestamped trace, requests/s; undefined with fewer than 2 distinct times. */
export function traceRatePerSec(trace: Trace): number | undefined {
  const n = trace.requests.length;
  if (n < 2) return undefined;
  let t0 = Number.POSITIVE_INFINITY;
  let t1 = Number.NEGATIVE_INFINITY;
  for (const r of trace.requests) {
    if (r.arrivalUs < t0) t0 = r.arrivalUs;
    if (r.arrivalUs > t1) t1 = r.arrivalUs;
  }
  return t1 > t0 ? ((n - 1) * 1e6) / (t1 - t0) : undefined;
}

// ---------------------------------------------------------------------------------------------
// engine limits

/** Block sizes vLLM's `--block-size` accepts on CUDA (tokens per KV block). */
export const BLOCK_SIZES = [8, 16, 32, 64, 128] as const;

/** Engine limits given on the command line (vLLM's flag names). */
export interface EngineOverrides {
  readonly maxNumBatchedTokens?: number | undefined;
  readonly maxNumSeqs?: number | undefined;
  readonly gpuMemoryUtilization?: number | undefined;
  readonly blockSize?: number | undefined;
}

/**
 * Checks `--block-size`.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a size vLLM does not accept.
 */
export function checkBlockSize(blockSize: number | undefined): void {
  if (blockSize !== undefined && !(BLOCK_SIZES as readonly number[]).includes(blockSize)) {
    throw invalid('--block-size', blockSize, `one of ${BLOCK_SIZES.join(', ')} (tokens per KV block, as vLLM's --block-size)`);
  }
}

/** The profile with the command line's engine limits applied (the same object when none is given). */
export function applyOverrides(profile: EngineProfile, o: EngineOverrides): EngineProfile {
  if (o.maxNumBatchedTokens === undefined && o.maxNumSeqs === undefined && o.gpuMemoryUtilization === undefined && o.blockSize === undefined) return profile;
  return {
    ...profile,
    ...(o.maxNumBatchedTokens === undefined ? {} : { tokenBudget: o.maxNumBatchedTokens }),
    ...(o.maxNumSeqs === undefined ? {} : { maxSeqs: o.maxNumSeqs }),
    ...(o.gpuMemoryUtilization === undefined ? {} : { gpuMemoryUtilization: o.gpuMemoryUtilization }),
    ...(o.blockSize === undefined ? {} : { blockSize: o.blockSize }),
  };
}

/**
 * Checks `--tp` against the model as vLLM does: attention heads divisible by TP, and KV heads
 * divisible by TP (or TP by KV heads, when KV heads are replicated).
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` listing the valid degrees.
 */
export function checkTp(modelName: string, tp: number): void {
  const m = getModelSpec(modelName);
  const ok = (t: number) => m.numHeads % t === 0 && (t >= m.numKvHeads ? t % m.numKvHeads === 0 : m.numKvHeads % t === 0);
  if (ok(tp)) return;
  const valid: number[] = [];
  for (let t = 1; t <= m.numHeads; t++) if (ok(t)) valid.push(t);
  throw invalid(
    '--tp',
    tp,
    `a tensor-parallel degree that divides ${m.name}'s ${m.numHeads} attention heads and ${m.numKvHeads} KV heads, as vLLM requires: one of ${valid.join(', ')}`,
  );
}

/**
 * Warns when a pipeline the user wrote asks `chunked-prefill` for more tokens or sequences per
 * step than the engine's limits allow: the pass caps at them (vLLM's `max_num_batched_tokens`
 * and `max_num_seqs`). Presets are not checked: their budgets are the engines' own spelling.
 */
export function pipelineClampWarnings(pipeline: string | undefined, profile: EngineProfile, label: string): void {
  if (pipeline === undefined || Object.hasOwn(PRESETS, pipeline.trim())) return;
  let root: AnchorNode;
  try {
    root = parsePipeline(pipeline, createDefaultRegistry());
  } catch {
    return; // validateVariant reports it
  }
  const visit = (node: AnchorNode): void => {
    for (const c of node.children) {
      if (c.kind === 'anchor') {
        visit(c);
        continue;
      }
      if (c.name !== 'chunked-prefill') continue;
      const text = pipeline.slice(c.span.offset, c.span.offset + c.span.length);
      const budget = c.options.budget;
      if (/\bbudget\s*=/.test(text) && typeof budget === 'number' && budget > profile.tokenBudget) {
        warnOnce(
          `pipeline of ${label}: chunked-prefill{budget=${budget}} is capped at ${profile.tokenBudget} tokens per step, the engine's limit (${profile.name}'s max_num_batched_tokens); add --max-num-batched-tokens ${budget} to raise it`,
        );
      }
      const seqs = c.options['max-seqs'];
      if (/\bmax-seqs\s*=/.test(text) && typeof seqs === 'number' && seqs > profile.maxSeqs) {
        warnOnce(`pipeline of ${label}: chunked-prefill{max-seqs=${seqs}} is capped at ${profile.maxSeqs} sequences per step, the engine's limit (${profile.name}'s max_num_seqs); add --max-num-seqs ${seqs} to raise it`);
      }
    }
  };
  visit(root);
}

// ---------------------------------------------------------------------------------------------
// memory

/**
 * Memory one simulated instance takes, bytes: a fixed part (scheduler, latency and router state,
 * per-instance tables) plus the KV bookkeeping per GPU and CPU block. Measured as the peak RSS of
 * `kvmgr replay --limit 50` at 1, 32 and 128 instances of Llama-3.1-8B on H100 (28,395 blocks:
 * 11.3 MB each) and H200 (56,504 blocks: 13.7 MB each).
 */
export const INSTANCE_FIXED_BYTES = 8e6;
/** Bytes per KV block of an instance (see {@link INSTANCE_FIXED_BYTES}). */
export const BLOCK_BYTES = 110;
/** The process itself: runtime, modules, trace, results. */
export const BASE_BYTES = 400e6;
/** Share of the memory limit a run may plan to use (the rest: the OS, the allocator's slack). */
export const MEMORY_HEADROOM = 0.9;

/** Memory the process may use: physical memory, or the cgroup limit when lower. */
export function memoryLimitBytes(): number {
  const constrained = (process as { constrainedMemory?: () => number | undefined }).constrainedMemory?.();
  const total = totalmem();
  return constrained !== undefined && constrained > 0 && constrained < total ? constrained : total;
}

/** Estimated bytes of one instance of `profile` for model/GPU/TP (throws as `gpuKvBlocks` does when the weights do not fit). */
export function instanceBytes(model: string, gpu: string, tp: number, profile: EngineProfile): { bytes: number; gpuBlocks: number; cpuBlocks: number } {
  const m = getModelSpec(model);
  const gpuBlocks = gpuKvBlocks(m, getGpuSpec(gpu), tp, profile.blockSize, profile.gpuMemoryUtilization);
  const cpuBlocks = profile.cpuOffloadGiB > 0 ? cpuKvBlocks(m, tp, profile.blockSize, profile.cpuOffloadGiB) : 0;
  return { bytes: INSTANCE_FIXED_BYTES + BLOCK_BYTES * (gpuBlocks + cpuBlocks), gpuBlocks, cpuBlocks };
}

function gb(bytes: number): string {
  return `${(bytes / 1e9).toFixed(bytes < 10e9 ? 1 : 0)} GB`;
}

/**
 * Refuses a run whose simulated cluster will not fit in memory, before it starts.
 * @param concurrent - runs held in memory at once (sweep: worker threads; replay/ab: 1).
 * @param limitBytes - memory available. @default {@link memoryLimitBytes}
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` naming `--instances`, the estimate and the limit.
 */
export function checkMemory(opts: { model: string; gpu: string; tp: number; instances: number }, profiles: readonly EngineProfile[], concurrent = 1, limitBytes = memoryLimitBytes()): void {
  let worst = { bytes: 0, gpuBlocks: 0, cpuBlocks: 0, profile: '' };
  for (const p of profiles) {
    const e = instanceBytes(opts.model, opts.gpu, opts.tp, p);
    if (e.bytes > worst.bytes) worst = { ...e, profile: p.name };
  }
  const budget = limitBytes * MEMORY_HEADROOM - BASE_BYTES * concurrent;
  const need = worst.bytes * opts.instances * concurrent;
  if (need <= budget) return;
  const fit = Math.max(0, Math.floor(budget / concurrent / worst.bytes));
  const blocks = `${worst.gpuBlocks} GPU${worst.cpuBlocks > 0 ? ` + ${worst.cpuBlocks} CPU` : ''} KV blocks`;
  const par = concurrent > 1 ? ` × ${concurrent} parallel runs` : '';
  throw invalid(
    '--instances',
    opts.instances,
    `at most ${fit} instances${par} in this machine's ${gb(limitBytes)} of memory: each simulated instance of ${opts.model} on ${opts.gpu} (${worst.profile}, ${blocks}) takes about ${(worst.bytes / 1e6).toFixed(1)} MB, so ${opts.instances}${par} need about ${gb(need + BASE_BYTES * concurrent)}`,
    { estimateBytes: need, limitBytes },
  );
}

// ---------------------------------------------------------------------------------------------
// rates

/**
 * Output tokens per second a cluster can decode at most: every instance decoding as many of the
 * trace's mean-sized sequences as fit in its KV cache (at most `maxSeqs`) at the latency model's
 * step time, with no prefill (an optimistic ceiling: prefill and preemption only lower it).
 * @param meanContextTokens - mean prompt + half the output of the trace's requests.
 */
export function decodeCeilingTokPerSec(model: string, gpu: string, tp: number, instances: number, profile: EngineProfile, meanContextTokens = 0): number {
  const m = getModelSpec(model);
  const g = getGpuSpec(gpu);
  const lat = selectLatencyModel('auto', m, g, tp).latency;
  const kvTokens = gpuKvBlocks(m, g, tp, profile.blockSize, profile.gpuMemoryUtilization) * profile.blockSize;
  const n = Math.max(1, Math.min(profile.maxSeqs, meanContextTokens > 0 ? Math.floor(kvTokens / meanContextTokens) : profile.maxSeqs));
  const us = lat.stepTimeUs({ prefillTokens: 0, decodeTokens: n, numSeqs: n, prefillAttnPairs: 0, decodeContextTokens: n * meanContextTokens });
  return us > 0 ? (instances * n * 1e6) / us : Number.POSITIVE_INFINITY;
}

/** Mean prompt + half the output of a trace's requests, tokens (the mean context of a decoding sequence). */
export function meanContextTokens(trace: Trace): number {
  let sum = 0;
  for (const r of trace.requests) sum += r.promptTokens + r.outputTokens / 2;
  return trace.requests.length > 0 ? sum / trace.requests.length : 0;
}

/** Output tokens per second the trace offers at `rateScale`; undefined when all arrivals coincide. */
export function offeredTokPerSec(trace: Trace, rateScale: number): number | undefined {
  const rate = traceRatePerSec(trace);
  if (rate === undefined) return undefined;
  let out = 0;
  for (const r of trace.requests) out += r.outputTokens;
  return (out / trace.requests.length) * rate * rateScale;
}

/**
 * Warns once when the arrival rate asks for more output tokens per second than the cluster can
 * decode even in the best case: every request only queues, and the run measures the backlog.
 */
export function saturationWarning(flag: string, shown: string, offered: number | undefined, ceiling: number): void {
  if (offered === undefined || !(offered > ceiling)) return;
  warnOnce(
    `${flag} ${shown}: the trace then asks for about ${fmt(offered)} output tokens/s, more than the cluster can ever decode (about ${fmt(ceiling)} tokens/s with every KV cache full of decoding requests): the run is past saturation and measures a growing queue (kvmgr sweep finds the knee)`,
  );
}

function fmt(x: number): string {
  return x >= 1e6 ? x.toExponential(2) : String(Math.round(x));
}

// ---------------------------------------------------------------------------------------------
// workers

/**
 * Worker threads for a sweep: at most one per job, and at most the CPU cores unless forced.
 * Says once on stderr when `--workers` was lowered.
 */
export function sweepThreads(workers: number | undefined, jobs: number, force: boolean, cores = availableParallelism()): number {
  const max = force ? jobs : Math.min(jobs, cores);
  const threads = Math.max(1, Math.min(workers ?? max, max));
  if (workers !== undefined && threads < workers) {
    const why = threads === jobs ? `${jobs} run${jobs === 1 ? '' : 's'} to do` : `${cores} CPU cores; --force-workers allows more`;
    note(`--workers ${workers}: using ${threads} worker threads (${why})`);
  }
  return threads;
}
