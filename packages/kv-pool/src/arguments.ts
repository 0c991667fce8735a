/**
 * Shape checks for arguments that arrive untyped (JS callers, deserialized requests): a list
 * where an array is expected, an object where a record is expected. Each throws
 * `KVMGR_INVALID_ARGUMENT` instead of letting a `TypeError` escape half-way through.
 */
import { invalidArgument } from '@kvmgr/core';

/** Requires an array or array-like object (typed arrays included). */
export function requireList(field: string, value: unknown): void {
  if (value === null || typeof value !== 'object' || !Number.isSafeInteger((value as { length?: unknown }).length) || ((value as { length: number }).length < 0)) {
    throw invalidArgument(field, value, 'an array');
  }
}

/** Requires a non-null object. */
export function requireRecord(field: string, value: unknown): void {
  if (value === null || typeof value !== 'object') throw invalidArgument(field, value, 'an object');
}
