import { KvmgrError, describeValue, invalidArgument } from '@kvmgr/core';

/**
 * Throws `KVMGR_INVALID_ARGUMENT` unless every element of `keys` is an integer in [0, 2^32).
 * A `Uint32Array` is accepted without a scan.
 */
export function requireU32Keys(field: string, keys: ArrayLike<number>): void {
  if (keys instanceof Uint32Array) return;
  if (keys === null || typeof keys !== 'object' || typeof keys.length !== 'number') {
    throw invalidArgument(field, keys, 'an array of unsigned 32-bit integers');
  }
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i];
    if (typeof k !== 'number' || k >>> 0 !== k) {
      throw new KvmgrError(
        'KVMGR_INVALID_ARGUMENT',
        `${field}[${i}] must be an unsigned 32-bit integer, got ${describeValue(k)}`,
        { details: { field: `${field}[${i}]`, value: k, expected: 'an integer in [0, 2^32)' } },
      );
    }
  }
}

/** Throws `KVMGR_INVALID_ARGUMENT` unless `blocks[from..count)` are integers in [0, 2^32). */
export function requireU32Blocks(field: string, blocks: ArrayLike<number>, count: number, from = 0): void {
  if (blocks === null || typeof blocks !== 'object' || typeof blocks.length !== 'number') {
    throw invalidArgument(field, blocks, 'an array of block ids (unsigned 32-bit integers)');
  }
  if (blocks instanceof Uint32Array) return;
  for (let i = from; i < count; i++) {
    const b = blocks[i];
    if (typeof b !== 'number' || b >>> 0 !== b) {
      throw new KvmgrError(
        'KVMGR_INVALID_ARGUMENT',
        `${field}[${i}] must be a block id (unsigned 32-bit integer), got ${describeValue(b)}`,
        { details: { field: `${field}[${i}]`, value: b, expected: 'an integer in [0, 2^32)' } },
      );
    }
  }
}
