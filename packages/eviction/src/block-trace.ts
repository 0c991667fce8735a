/**
 * Block-level prefix-cache replay: the harness behind the hit-ratio table.
 */
import { readFileSync } from 'node:fs';
import { type EvictionEntryInfo, type EvictionPolicy, parseMooncakeRows, requirePositiveInt } from '@kvmgr/core';

/** One request of a block trace: arrival and its prompt's block ids in order. */
export interface BlockTraceRequest {
  /** Arrival, ms since the start of the trace. */
  readonly timestampMs: number;
  /** Prompt block ids (hashes) in prompt order; u32. */
  readonly blocks: readonly number[];
  /** Tokens the request generated (`output_length`), when the trace has it. */
  readonly outputTokens?: number;
}

/**
 * What {@link replayBlockTrace} passes on each access: core's {@link EvictionEntryInfo} plus
 * where the block sits in its prompt. Position-aware policies (predictive) read these.
 */
export interface BlockAccessInfo extends EvictionEntryInfo {
  /** 0-based position of the block in the prompt. */
  readonly depth: number;
  /** Blocks in the prompt. */
  readonly promptBlocks: number;
  /** Leading blocks of the prompt that were cached at lookup (the prefix hit). */
  readonly matchedBlocks: number;
}

/** Totals of a replay. */
export interface BlockReplayResult {
  readonly requests: number;
  /** Block references (sum of prompt lengths in blocks). */
  readonly blocks: number;
  /** Blocks served from cache (leading cached blocks per request). */
  readonly hitBlocks: number;
  /** hitBlocks / blocks. */
  readonly hitRatio: number;
  readonly evictions: number;
}

/**
 * Reads a Mooncake-style JSONL trace (`timestamp` ms, `hash_ids`; `input_length` and
 * `output_length` optional) and returns the requests sorted by arrival (stable). Rows are read
 * and validated by core's {@link parseMooncakeRows}; the number of `hash_ids` is not tied to
 * `input_length`, so block traces of any block size work.
 * @param path - JSONL file.
 * @throws KvmgrError `KVMGR_BAD_TRACE` naming the 1-based line (`path:line: reason`) of a row that
 *   does not parse, lacks a finite `timestamp` >= 0 or an array of u32 `hash_ids`, or has a
 *   malformed length.
 */
export function readBlockTrace(path: string): BlockTraceRequest[] {
  const { rows } = parseMooncakeRows(readFileSync(path, 'utf8'), path, { requireLengths: false, checkBlockCount: false });
  const out: BlockTraceRequest[] = rows.map((r) => ({
    timestampMs: r.timestampMs,
    blocks: r.hashIds,
    ...(r.outputLength === undefined ? {} : { outputTokens: r.outputLength }),
  }));
  return out.map((r, i) => ({ r, i })).sort((a, b) => a.r.timestampMs - b.r.timestampMs || a.i - b.i).map((x) => x.r);
}

/** Every block access of a replay in order (what {@link BeladyPolicy} needs as its future). */
export function blockAccessSequence(requests: readonly BlockTraceRequest[]): Uint32Array {
  let n = 0;
  for (const r of requests) n += r.blocks.length;
  const out = new Uint32Array(n);
  let i = 0;
  for (const r of requests) for (const b of r.blocks) out[i++] = b;
  return out;
}

/**
 * For each request, the time until the trace next reuses its prompt: ms from its arrival to
 * the next request that contains its last full block (the block before the last, partial one)
 * — the conversation's next turn, a branch or a resend. `Infinity` when no later request does,
 * `NaN` for prompts of fewer than 3 blocks (nothing past the root and the partial block).
 * It reads the future: for analysis and oracle bounds only, like `BeladyPolicy`.
 *
 * @param requests - in arrival order.
 * @returns one gap per request, ms.
 */
export function followUpGapsMs(requests: readonly BlockTraceRequest[]): Float64Array {
  const out = new Float64Array(requests.length);
  const nextUse = new Map<number, number>();
  for (let i = requests.length - 1; i >= 0; i--) {
    const r = requests[i] as BlockTraceRequest;
    const b = r.blocks;
    if (b.length < 3) out[i] = Number.NaN;
    else {
      const j = nextUse.get(b[b.length - 2] as number);
      out[i] = j === undefined ? Number.POSITIVE_INFINITY : (requests[j] as BlockTraceRequest).timestampMs - r.timestampMs;
    }
    for (const x of b) nextUse.set(x, i);
  }
  return out;
}

/**
 * Replays a block trace through a policy with prefix semantics: at each arrival the hit is
 * the number of leading blocks that are cached; then every block of the prompt is touched
 * (cached) or inserted (evicting `victim()`s until below capacity first), in prompt order.
 *
 * @param requests - in arrival order.
 * @param policy - an empty policy; it sees `insert`/`touch` with a {@link BlockAccessInfo}.
 * @param capacity - cache size, blocks.
 * @returns totals; block hit ratio = hitBlocks / blocks.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when capacity is not a positive integer.
 */
export function replayBlockTrace(
  requests: readonly BlockTraceRequest[],
  policy: EvictionPolicy,
  capacity: number,
): BlockReplayResult {
  requirePositiveInt('capacity', capacity);
  let blocks = 0;
  let hitBlocks = 0;
  let evictions = 0;
  const info = { nowUs: 0, depth: 0, promptBlocks: 0, matchedBlocks: 0 };
  for (const r of requests) {
    const ids = r.blocks;
    let hit = 0;
    while (hit < ids.length && policy.has(ids[hit] as number)) hit++;
    blocks += ids.length;
    hitBlocks += hit;
    info.nowUs = r.timestampMs * 1000;
    info.promptBlocks = ids.length;
    info.matchedBlocks = hit;
    for (let d = 0; d < ids.length; d++) {
      const b = ids[d] as number;
      info.depth = d;
      if (policy.has(b)) policy.touch(b, info);
      else {
        while (policy.size >= capacity) {
          policy.remove(policy.victim());
          evictions++;
        }
        policy.insert(b, info);
      }
    }
  }
  return { requests: requests.length, blocks, hitBlocks, hitRatio: blocks === 0 ? 0 : hitBlocks / blocks, evictions };
}
