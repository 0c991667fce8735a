/** Waiting for the end of a long-running command (`kvmgr engine`, `serve`, `epp`). */

/**
 * Resolves with the signal's name on the first SIGINT or SIGTERM (then stops listening), or with
 * `'parent gone'` when this process was started with an IPC channel (by `kvmgr live`) and the
 * channel closes, so a child never outlives a parent killed with -9.
 */
export function waitForSignal(): Promise<string> {
  return new Promise((resolve) => {
    const stop = (sig: string) => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      process.off('disconnect', orphaned);
      resolve(sig);
    };
    const orphaned = () => stop('parent gone');
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
    if (process.send !== undefined) process.once('disconnect', orphaned);
  });
}
