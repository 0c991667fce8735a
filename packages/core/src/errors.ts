/**
 * Errors thrown by every kvmgr package: one class, a stable string `code`, a message that
 * names the bad value and what was expected, and an optional `cause`.
 */

/**
 * Stable error codes. Packages may use other `KVMGR_*` strings; these are the shared ones.
 *
 * - `KVMGR_INVALID_ARGUMENT`: a value is out of range, of the wrong type, or malformed.
 * - `KVMGR_OUT_OF_BLOCKS`: an allocation asked for more KV blocks than are free.
 * - `KVMGR_BAD_TRACE`: a trace file or row cannot be read.
 * - `KVMGR_BAD_CONFIG`: a configuration file or string is invalid.
 * - `KVMGR_BAD_PIPELINE`: a scheduler pass pipeline does not parse or names unknown passes.
 * - `KVMGR_VERIFY_FAILED`: an invariant check (verifier) failed.
 * - `KVMGR_PROTOCOL`: a wire message (KV events, HTTP, metrics) is malformed.
 * - `KVMGR_UNKNOWN_HANDLE`: a handle, id or name does not refer to a live object.
 * - `KVMGR_INVALID_STATE`: the operation is not allowed in the object's current state
 *   (double free, unlock below zero, use after close).
 * - `KVMGR_UNAVAILABLE`: a backend, runtime library or resource is not available here.
 * - `KVMGR_NOT_FOUND`: a file or named entry does not exist.
 * - `KVMGR_OUT_OF_MEMORY`: host or device memory could not be allocated.
 * - `KVMGR_NATIVE`: a vendor runtime (CUDA, HIP, ACL) reported an error.
 * - `KVMGR_PASS_FAILED`: a scheduler pass threw while running.
 */
export type KvmgrErrorCode =
  | 'KVMGR_INVALID_ARGUMENT'
  | 'KVMGR_OUT_OF_BLOCKS'
  | 'KVMGR_BAD_TRACE'
  | 'KVMGR_BAD_CONFIG'
  | 'KVMGR_BAD_PIPELINE'
  | 'KVMGR_VERIFY_FAILED'
  | 'KVMGR_PROTOCOL'
  | 'KVMGR_UNKNOWN_HANDLE'
  | 'KVMGR_INVALID_STATE'
  | 'KVMGR_UNAVAILABLE'
  | 'KVMGR_NOT_FOUND'
  | 'KVMGR_OUT_OF_MEMORY'
  | 'KVMGR_NATIVE'
  | 'KVMGR_PASS_FAILED';

/** The brand that marks kvmgr errors across copies of this package (`Symbol.for`, realm-wide). */
const KVMGR_ERROR_BRAND: unique symbol = Symbol.for('@kvmgr/core.KvmgrError') as never;

/** Options of a {@link KvmgrError}. */
export interface KvmgrErrorOptions {
  /** The error this one wraps. */
  cause?: unknown;
  /** Structured facts about the failure (e.g. `{ field: 'numLayers', value: 0 }`). */
  details?: Readonly<Record<string, unknown>>;
}

/**
 * The error class of every kvmgr package.
 *
 * @example
 * ```ts
 * throw new KvmgrError('KVMGR_INVALID_ARGUMENT', 'numLayers must be a positive integer, got 0', {
 *   details: { field: 'numLayers', value: 0 },
 * });
 * ```
 */
export class KvmgrError extends Error {
  /** Stable machine-readable code, e.g. `KVMGR_OUT_OF_BLOCKS`. */
  readonly code: KvmgrErrorCode | (string & {});
  /** Structured facts about the failure; `{}` when none. */
  readonly details: Readonly<Record<string, unknown>>;
  declare readonly [KVMGR_ERROR_BRAND]: true;

  /**
   * @param code - stable string code (see {@link KvmgrErrorCode}).
   * @param message - names the bad value and what was expected.
   * @param options - `cause` and `details`.
   */
  constructor(code: KvmgrErrorCode | (string & {}), message: string, options: KvmgrErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'KvmgrError';
    this.code = code;
    this.details = options.details ?? {};
    Object.defineProperty(this, KVMGR_ERROR_BRAND, { value: true, enumerable: false });
  }
}

/**
 * True when `value` is a {@link KvmgrError}, also one thrown by another copy of `@kvmgr/core`
 * (two versions installed side by side), which `instanceof` would miss.
 *
 * @param value - anything caught.
 * @param code - when given, the error must also carry this code.
 */
export function isKvmgrError(value: unknown, code?: KvmgrErrorCode | (string & {})): value is KvmgrError {
  if (typeof value !== 'object' || value === null) return false;
  const branded = (value as Record<symbol, unknown>)[KVMGR_ERROR_BRAND] === true;
  if (!branded || typeof (value as { code?: unknown }).code !== 'string') return false;
  return code === undefined || (value as { code: string }).code === code;
}

/** Formats a value for an error message: strings quoted, numbers as written, objects as JSON. */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'number' || typeof value === 'boolean' || value === null || value === undefined) {
    return String(value);
  }
  try {
    const s = JSON.stringify(value);
    return s.length > 80 ? `${s.slice(0, 77)}...` : s;
  } catch {
    return Object.prototype.toString.call(value);
  }
}

/**
 * Builds the standard `KVMGR_INVALID_ARGUMENT` error for a field.
 *
 * @param field - the argument or field name, e.g. `spec.numLayers`.
 * @param value - the bad value.
 * @param expected - what was expected, e.g. `a positive integer`.
 */
export function invalidArgument(field: string, value: unknown, expected: string): KvmgrError {
  return new KvmgrError('KVMGR_INVALID_ARGUMENT', `${field} must be ${expected}, got ${describeValue(value)}`, {
    details: { field, value, expected },
  });
}
