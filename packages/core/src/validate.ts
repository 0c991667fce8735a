/**
 * Boundary checks shared by every package. Each throws `KVMGR_INVALID_ARGUMENT` naming the
 * field, the value and what was expected, and returns the value typed.
 */
import { invalidArgument } from './errors.js';

/**
 * Requires a positive safe integer (≥ 1).
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` otherwise.
 */
export function requirePositiveInt(field: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw invalidArgument(field, value, 'a positive integer');
  }
  return value;
}

/**
 * Requires a non-negative safe integer (≥ 0).
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` otherwise.
 */
export function requireNonNegativeInt(field: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw invalidArgument(field, value, 'a non-negative integer');
  }
  return value;
}

/**
 * Requires a finite number ≥ 0.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` otherwise (NaN and ±Infinity included).
 */
export function requireNonNegativeNumber(field: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw invalidArgument(field, value, 'a finite number >= 0');
  }
  return value;
}

/**
 * Requires a finite number > 0.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` otherwise.
 */
export function requirePositiveNumber(field: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw invalidArgument(field, value, 'a finite number > 0');
  }
  return value;
}

/**
 * Requires a finite number in `[min, max]`.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` otherwise.
 */
export function requireInRange(field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw invalidArgument(field, value, `a number in [${min}, ${max}]`);
  }
  return value;
}

/**
 * Requires one of the listed string values.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` otherwise, listing the allowed values.
 */
export function requireOneOf<const T extends string>(field: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw invalidArgument(field, value, `one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}`);
  }
  return value as T;
}
