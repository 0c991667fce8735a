/** Turns errors thrown by the C++ side (plain `Error`s with a `code`) into `KvmgrError`s. */
import { KvmgrError, isKvmgrError } from '@kvmgr/core';

/** Wraps a native error; `KVMGR_*` codes are kept, anything else becomes `KVMGR_NATIVE`. */
export function toKvmgrError(e: unknown): KvmgrError {
  if (isKvmgrError(e)) return e;
  const code = typeof (e as { code?: unknown })?.code === 'string' ? (e as { code: string }).code : '';
  const message = e instanceof Error ? e.message : String(e);
  return new KvmgrError(code.startsWith('KVMGR_') ? code : 'KVMGR_NATIVE', message, { cause: e });
}

/** Runs `fn`, rethrowing native errors as `KvmgrError`. */
export function native<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw toKvmgrError(e);
  }
}
