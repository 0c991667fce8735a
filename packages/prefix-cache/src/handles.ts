/**
 * Generation-tagged node handles. Node ids are reused after eviction, so a bare id held past its
 * node's eviction would name an unrelated node; a handle carries the id's generation as well
 * (`generation · 2^32 + id`), and a stale one is refused. Generation 0 is the bare id, so the
 * first use of every id gives the same handle numbers as before.
 */
import { KvmgrError } from '@kvmgr/core';

const ID_SPAN = 2 ** 32;
/** Generations wrap at 2^20, which keeps handles below 2^52 (safe integers). */
const GEN_MASK = 0xfffff;

/** The handle of `id` at generation `gen`. */
export function encodeHandle(id: number, gen: number): number {
  return gen * ID_SPAN + id;
}

/** The next generation after `gen` (wrapping). */
export function nextGeneration(gen: number): number {
  return (gen + 1) & GEN_MASK;
}

/**
 * The id a handle names, checked against the live ids and their generations.
 * @throws KvmgrError `KVMGR_UNKNOWN_HANDLE` when `handle` is not an integer handle of a live id at its current generation.
 */
export function decodeHandle(handle: unknown, highId: number, gens: Uint32Array, isLive: (id: number) => boolean, what: string, op: string): number {
  if (typeof handle === 'number' && Number.isSafeInteger(handle) && handle >= 0) {
    const id = handle % ID_SPAN;
    if (id < highId && isLive(id) && gens[id] === (handle - id) / ID_SPAN) return id;
  }
  throw new KvmgrError('KVMGR_UNKNOWN_HANDLE', `${op}: ${what} ${String(handle)} is not a live ${what} of this cache (evicted, cleared, or never returned)`, {
    details: { node: handle },
  });
}
