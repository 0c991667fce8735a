import { KvmgrError, MOONCAKE_BLOCK_TOKENS, invalidArgument, requirePositiveInt } from '@kvmgr/core';

/** Tokens per Mooncake `hash_ids` block (core's constant, re-exported). */
export { MOONCAKE_BLOCK_TOKENS };

/** Options of {@link mooncakeEngineBlockKeys}. */
export interface MooncakeKeyOptions {
  /** Engine block size, tokens; must divide 512. @default 16 */
  readonly engineBlockSize?: number;
}

/** Engine-size block keys of one Mooncake request. */
export interface MooncakeEngineBlocks {
  /** One u32 key per engine block, in prompt order (the last one may be partial). */
  readonly keys: Uint32Array;
  /** Tokens in the last engine block (1..engineBlockSize). */
  readonly lastBlockTokens: number;
  /** Engine blocks that are full (`keys.length` or `keys.length - 1`). */
  readonly fullBlocks: number;
}

/**
 * Maps a Mooncake request (`hash_ids` of 512-token blocks, `input_length` tokens) to one u32
 * key per engine block: sub-block `j` (0 ≤ j < 512 / engineBlockSize) of trace block `h` gets
 * key `h * (512 / engineBlockSize) + j`. The mapping is deterministic and injective (distinct
 * (h, j) give distinct keys), so two requests share an engine key exactly when they share the
 * trace block and the sub-block position. The last trace block is cut to
 * `input_length - 512 * (hash_ids.length - 1)` tokens, so it yields
 * `ceil(thatTokens / engineBlockSize)` keys, the last possibly partial.
 *
 * @param hashIds - the record's `hash_ids` (non-negative integers).
 * @param inputLength - the record's `input_length`, tokens; must lie in
 *   `(512 * (n - 1), 512 * n]` for `n = hashIds.length`.
 * @param options - `engineBlockSize` (@default 16).
 * @returns the keys, the tokens in the last engine block and the number of full engine blocks.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when `engineBlockSize` does not divide 512, or a hash
 *   id is so large that a key would not fit in u32 (`hashId * (512 / engineBlockSize) + j ≥ 2^32`);
 *   `KVMGR_BAD_TRACE` when `inputLength` does not fit the number of blocks or a hash id is not a
 *   non-negative integer.
 * @see https://github.com/kvcache-ai/Mooncake/blob/main/FAST25-release/traces/README.md
 */
export function mooncakeEngineBlockKeys(
  hashIds: readonly number[],
  inputLength: number,
  options: MooncakeKeyOptions = {},
): MooncakeEngineBlocks {
  const bs = requirePositiveInt('engineBlockSize', options.engineBlockSize ?? 16);
  if (MOONCAKE_BLOCK_TOKENS % bs !== 0) {
    throw invalidArgument('engineBlockSize', bs, `a divisor of ${MOONCAKE_BLOCK_TOKENS}`);
  }
  const per = MOONCAKE_BLOCK_TOKENS / bs;
  const n = hashIds.length;
  if (!Number.isSafeInteger(inputLength) || inputLength <= MOONCAKE_BLOCK_TOKENS * (n - 1) || inputLength > MOONCAKE_BLOCK_TOKENS * n) {
    throw new KvmgrError(
      'KVMGR_BAD_TRACE',
      `input_length must be in (${MOONCAKE_BLOCK_TOKENS * (n - 1)}, ${MOONCAKE_BLOCK_TOKENS * n}] for ${n} hash_ids, got ${String(inputLength)}`,
      { details: { inputLength, blocks: n } },
    );
  }
  const maxHashId = Math.floor((0xffffffff - (per - 1)) / per);
  const lastTraceTokens = inputLength - MOONCAKE_BLOCK_TOKENS * (n - 1);
  const lastSub = Math.ceil(lastTraceTokens / bs);
  const total = (n - 1) * per + lastSub;
  const keys = new Uint32Array(total);
  let k = 0;
  for (let i = 0; i < n; i++) {
    const h = hashIds[i];
    if (typeof h !== 'number' || !Number.isSafeInteger(h) || h < 0) {
      throw new KvmgrError('KVMGR_BAD_TRACE', `hash_ids[${i}] must be a non-negative integer, got ${String(h)}`, {
        details: { index: i, value: h },
      });
    }
    if (h > maxHashId) {
      throw invalidArgument(`hash_ids[${i}]`, h, `<= ${maxHashId} so that its ${per} engine keys fit in u32`);
    }
    const subs = i === n - 1 ? lastSub : per;
    for (let j = 0; j < subs; j++) keys[k++] = h * per + j;
  }
  const lastBlockTokens = lastTraceTokens - (lastSub - 1) * bs;
  return { keys, lastBlockTokens, fullBlocks: lastBlockTokens === bs ? total : total - 1 };
}
