import { isKvmgrError } from '@kvmgr/core';

/** Runs `fn` and returns the code of the KvmgrError it throws, or undefined when it returns. Other errors propagate. */
export function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    if (!isKvmgrError(e)) throw e;
    return e.code;
  }
}
