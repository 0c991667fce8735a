/**
 * Builds the fake vendor runtimes (test/fake/fake_runtime.c) into a temp dir: one library per
 * API (CUDA runtime, HIP, Ascend CL), each with its own call log.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** One built fake runtime. */
export interface FakeRuntime {
  /** Path of the shared library. */
  readonly library: string;
  /** Path of its call log. */
  readonly log: string;
}

const SOURCE = fileURLToPath(new URL('./fake/fake_runtime.c', import.meta.url));

/** Compiles a fake runtime (`CUDA`, `HIP` or `ACL`) with `cc -shared -fPIC`. */
export function buildFake(api: 'CUDA' | 'HIP' | 'ACL', dir = mkdtempSync(join(tmpdir(), 'kvmgr-fake-'))): FakeRuntime {
  const library = join(dir, `libfake_${api.toLowerCase()}.so`);
  const log = join(dir, `${api.toLowerCase()}.log`);
  writeFileSync(log, '');
  execFileSync('cc', ['-shared', '-fPIC', '-O1', `-DFAKE_${api}`, `-DFAKE_LOG_PATH="${log}"`, SOURCE, '-o', library, '-lpthread'], { stdio: 'pipe' });
  return { library, log };
}

/** Removes a fake's temp dir (the library stays mapped in this process; unlinking is fine). */
export function removeFake(fake: FakeRuntime): void {
  rmSync(join(fake.library, '..'), { recursive: true, force: true });
}

/** A copy of a fake library under another name (the addon caches runtimes per path). */
export function cloneLibrary(fake: FakeRuntime, name: string): string {
  const out = join(fake.library, '..', name);
  copyFileSync(fake.library, out);
  return out;
}

/** Log lines written since the last call, each split into name and `key=value` fields. */
export function takeLog(fake: FakeRuntime): { fn: string; args: Record<string, string> }[] {
  const text = readFileSync(fake.log, 'utf8');
  writeFileSync(fake.log, '');
  return text
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => {
      const [fn, ...rest] = l.split(' ');
      const args: Record<string, string> = {};
      for (const kv of rest) {
        const [k, v] = kv.split('=');
        args[k as string] = v ?? '';
      }
      return { fn: fn as string, args };
    });
}
