/**
 * Token ids for a trace that gives only block hashes and lengths (Mooncake `hash_ids`): each hash
 * id becomes a fixed block of token ids drawn from a PRNG keyed by (seed, hash id), so prefix
 * sharing in the trace is prefix sharing of token ids on the wire. Used by `kvmgr bench serve`
 * and the engine server's fidelity bench, so both send the same prompts for the same trace.
 */
import { MOONCAKE_BLOCK_TOKENS, type Rng, createRng } from '@kvmgr/core';
import type { SimRequest } from './types.js';

/** Token ids are drawn from Llama 3's ordinary range, clear of the low ids and of the special tokens at ≥ 128000. */
const TOKEN_MIN = 1000;
const TOKEN_MAX = 127_999;

/** A PRNG for (seed, key): distinct keys below 2^32 give distinct streams for one seed. */
export function keyedRng(seed: number, key: number): Rng {
  return createRng((Math.imul(seed >>> 0, 0x9e3779b1) + key) >>> 0);
}

/**
 * The token ids of one block: `length` ids from the PRNG of (seed, key).
 * @param seed - workload seed.
 * @param key - block identity (a Mooncake hash id, or a group/prompt number).
 * @param length - tokens.
 */
export function blockTokens(seed: number, key: number, length: number): number[] {
  const rng = keyedRng(seed, key);
  const out = new Array<number>(length);
  for (let i = 0; i < length; i++) out[i] = rng.int(TOKEN_MIN, TOKEN_MAX);
  return out;
}

/**
 * The prompt of a trace request: its hash ids' blocks (`hashBlockTokens` each, default Mooncake's
 * 512), concatenated and cut to the prompt length. Without hash ids, or where they cover fewer
 * tokens than the prompt, the request gets tokens unique to it (keyed by `fallbackKey`).
 */
export function tracePromptTokens(req: SimRequest, seed: number, fallbackKey: number): number[] {
  const ids = req.hashIds;
  const h = req.hashBlockTokens ?? MOONCAKE_BLOCK_TOKENS;
  if (ids === undefined || ids.length === 0) return blockTokens(seed ^ 0x5bd1e995, fallbackKey, req.promptTokens);
  const out: number[] = [];
  for (let b = 0; b < ids.length && out.length < req.promptTokens; b++) {
    const block = blockTokens(seed, ids[b] as number, Math.min(h, req.promptTokens - out.length));
    for (const t of block) out.push(t);
  }
  // hash ids that cover fewer tokens than the prompt: unique padding
  if (out.length < req.promptTokens) for (const t of blockTokens(seed ^ 0x5bd1e995, fallbackKey, req.promptTokens - out.length)) out.push(t);
  return out;
}
