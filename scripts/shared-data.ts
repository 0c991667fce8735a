/**
 * Where the shared data (traces, validation runs) lives, for the repository's scripts: the
 * folder named by `KVMGR_SHARED`, else `../shared` beside the repository root.
 *
 * Scripts under `packages/<pkg>/scripts/` import this by relative path (they run on sources
 * with tsx and are not published), so that every script and `pnpm docs:gen` resolve the data
 * the same way.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (absolute). */
export const repoRoot: string = resolve(fileURLToPath(new URL('..', import.meta.url)));

/**
 * The shared data folder (absolute): `$KVMGR_SHARED`, else `<repo>/../shared`.
 * @default `../shared` beside the repository
 */
export function sharedDir(): string {
  return resolve(process.env.KVMGR_SHARED ?? join(repoRoot, '..', 'shared'));
}

/**
 * A trace in the shared data folder, for a script that cannot run without it: its absolute
 * path, or, when it is absent, one line on stderr naming the path and how to point at the data,
 * then `process.exit(0)` (the script is skipped, not failed: a user with only the repository
 * has no shared data).
 * @param script - the script's name, for the message
 * @param file - file name under `traces/` (`mooncake_fast25_conversation_trace.jsonl`)
 */
export function sharedTraceOrSkip(script: string, file: string): string {
  const path = join(sharedDir(), 'traces', file);
  if (!existsSync(path)) {
    process.stderr.write(`${script}: skipped: no trace at ${path} (set KVMGR_SHARED to the folder holding traces/, or pass a trace path)\n`);
    process.exit(0);
  }
  return path;
}
