/**
 * Writes a run's output files all or nothing: files go to a hidden staging folder beside the
 * output directory and are renamed into place only when every file is written, so a failed
 * run never leaves `report.json` or `report.html` behind as if complete.
 */
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { KvmgrError } from '@kvmgr/core';

/**
 * Writes `files` (name → contents) into `outDir` atomically per file set.
 * @returns the paths written, as the user named the folder (`kvmgr-report/report.json`), so output
 *   and docs carry no machine paths.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when the folder cannot be created or written.
 */
export function writeOutputs(outDir: string, files: Readonly<Record<string, string>>): string[] {
  const dir = resolve(outDir);
  const staging = join(dirname(dir), `.${dir.split(/[\\/]/).pop() ?? 'out'}.tmp-${process.pid}`);
  try {
    mkdirSync(staging, { recursive: true });
    for (const [name, body] of Object.entries(files)) writeFileSync(join(staging, name), body);
    mkdirSync(dir, { recursive: true });
    const written: string[] = [];
    for (const name of Object.keys(files)) {
      renameSync(join(staging, name), join(dir, name));
      written.push(join(outDir, name));
    }
    return written;
  } catch (e) {
    throw new KvmgrError('KVMGR_INVALID_ARGUMENT', `--out ${outDir}: cannot write output files (${(e as Error).message})`, { cause: e });
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

/** Removes stale output files of an earlier run before a new run starts. */
export function removeOutputs(outDir: string, names: readonly string[]): void {
  for (const n of names) rmSync(join(resolve(outDir), n), { force: true });
}
