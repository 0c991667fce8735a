/**
 * Engine-block keys from trace hash ids: the simulator's prefix cache is keyed by one integer per
 * full engine block (vLLM-style block hashes), derived from the trace's coarser (Mooncake: 512
 * tokens) or finer prefix-chained hash ids.
 */
import { invalidArgument } from '@kvmgr/core';
import { MOONCAKE_BLOCK_TOKENS, mooncakeEngineBlockKeys } from '@kvmgr/prefix-cache';
import type { SimRequest } from './types.js';

/**
 * Keys of the full engine blocks of a request's prompt, prefix-unique (equal key at the same
 * position ⇔ equal prefix up to the end of that block).
 *
 * - `hashBlockTokens ≥ blockSize` (Mooncake 512 vs 16): key = hashId × (H / B) + sub-block index
 *   (exact, no collisions while hashId × H / B < 2^53).
 * - `hashBlockTokens < blockSize`: key = the last hash id inside the engine block (hash ids are
 *   prefix-chained, so it names the whole prefix).
 *
 * @param req - the request (no `hashIds` → empty keys).
 * @param blockSize - engine tokens per block.
 * @returns Float64Array of `floor(hashTokens / blockSize)` keys (`hashTokens` defaults to the
 *   prompt; fewer if the hash ids run out).
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when the two block sizes do not divide each other.
 */
export function engineBlockKeys(req: SimRequest, blockSize: number): Float64Array {
  const ids = req.hashIds;
  if (ids === undefined || ids.length === 0) return new Float64Array(0);
  const h = req.hashBlockTokens ?? 512;
  const covered = Math.min(req.hashTokens ?? req.promptTokens, req.promptTokens + req.outputTokens);
  const full = Math.floor(covered / blockSize);
  if (h === MOONCAKE_BLOCK_TOKENS && covered === req.promptTokens && blockSize <= h && h % blockSize === 0) {
    // Mooncake: @kvmgr/prefix-cache's mapping (sub-block j of trace block id h → h × 512/B + j).
    const m = mooncakeEngineBlockKeys(Array.from(ids), req.promptTokens, { engineBlockSize: blockSize });
    const out = new Float64Array(m.fullBlocks);
    for (let b = 0; b < m.fullBlocks; b++) out[b] = m.keys[b] as number;
    return out;
  }
  if (h >= blockSize) {
    if (h % blockSize !== 0) throw invalidArgument('blockSize', blockSize, `a divisor of the trace's hash block size ${h}`);
    const ratio = h / blockSize;
    const n = Math.min(full, ids.length * ratio);
    const out = new Float64Array(n);
    for (let b = 0; b < n; b++) {
      const hi = Math.floor(b / ratio);
      out[b] = (ids[hi] as number) * ratio + (b - hi * ratio);
    }
    return out;
  }
  if (blockSize % h !== 0) throw invalidArgument('blockSize', blockSize, `a multiple of the trace's hash block size ${h}`);
  const ratio = blockSize / h;
  const n = Math.min(full, Math.floor(ids.length / ratio));
  const out = new Float64Array(n);
  for (let b = 0; b < n; b++) out[b] = ids[(b + 1) * ratio - 1] as number;
  return out;
}
