/**
 * Check 3: a machine without a compiler toolchain. The install script is run against a copy of
 * the package with KVMGR_NATIVE_FAIL_TOOLCHAIN=1 (CC/CXX point nowhere, so node-gyp really
 * fails): it must exit 0 with one notice line and leave no addon. This process then loads the
 * package with KVMGR_NATIVE_ADDON pointing at that (missing) build, so `auto` selects the TS
 * fallback, prints the one-line notice, and the conformance suite passes on it.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { ArenaBlockBackend, createArena, listBackends, nativeAddonStatus } from '../src/index.js';
import { conformanceSuite, expectKvmgrError } from './conformance.js';

const pkgDir = fileURLToPath(new URL('..', import.meta.url));
const copy = mkdtempSync(join(tmpdir(), 'kvmgr-native-notoolchain-'));
for (const f of ['binding.gyp', 'package.json', 'cc']) cpSync(join(pkgDir, f), join(copy, f), { recursive: true });
const missingAddon = join(copy, 'build', 'Release', 'kvmgr_native.node');

function install(env: Record<string, string>): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [join(pkgDir, 'scripts', 'install.mjs'), '--package-dir', copy], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
  });
  return { status: r.status, stderr: r.stderr };
}

const failed = install({ KVMGR_NATIVE_FAIL_TOOLCHAIN: '1' });
const skipped = install({ KVMGR_NATIVE_SKIP_BUILD: '1' });
afterAll(() => rmSync(copy, { recursive: true, force: true }));
// Before anything loads the addon: this process now behaves like one whose build failed.
process.env.KVMGR_NATIVE_ADDON = missingAddon;

describe('install without a toolchain', () => {
  it('exits 0 with a one-line notice and builds nothing', () => {
    expect(failed.status).toBe(0);
    expect(failed.stderr.trim().split('\n')).toEqual([
      '@kvmgr/native: native addon not built (KVMGR_NATIVE_FAIL_TOOLCHAIN=1); the pure-TS fallback backend will be used',
    ]);
    expect(existsSync(missingAddon)).toBe(false);
    expect(skipped.status).toBe(0);
    expect(skipped.stderr).toBe('@kvmgr/native: native addon not built (KVMGR_NATIVE_SKIP_BUILD=1); the pure-TS fallback backend will be used\n');
  });

  it('--strict (build:native) reports the failure with a non-zero status', () => {
    const r = spawnSync(process.execPath, [join(pkgDir, 'scripts', 'install.mjs'), '--strict', '--package-dir', copy], {
      env: { ...process.env, KVMGR_NATIVE_SKIP_BUILD: '1' },
      encoding: 'utf8',
    });
    expect(r.status).toBe(1);
  });

  it('selects the TS fallback with one notice line; host and device backends say why', async () => {
    const status = nativeAddonStatus();
    expect(status.loaded).toBe(false);
    expect(status.reason).toContain(missingAddon);
    const rows = listBackends();
    expect(rows.filter((r) => r.available).map((r) => r.name)).toEqual(['ts-fallback']);
    for (const r of rows.filter((x) => x.name !== 'ts-fallback')) {
      expect(r).toMatchObject({ compiled: false, available: false });
      expect(r.reason).toMatch(/^native addon not loaded: cannot load /);
    }
    const write = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      const a = createArena({ numBlocks: 4, bytesPerBlock: 64 });
      const b = createArena({ numBlocks: 4, bytesPerBlock: 64 });
      expect(a.backend).toBe('ts-fallback');
      a.close();
      b.close();
      const lines = write.mock.calls.map((c) => String(c[0]));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^@kvmgr\/native: native addon unavailable \(cannot load .*\); using the pure-TS fallback backend\n$/);
    } finally {
      write.mockRestore();
    }
    expect(new ArenaBlockBackend().name).toBe('ts-fallback');
    await expectKvmgrError(() => createArena({ backend: 'host', numBlocks: 4, bytesPerBlock: 64 }), 'KVMGR_UNAVAILABLE');
  });
});

conformanceSuite('auto without the addon (ts-fallback)', (numBlocks, bytesPerBlock) => createArena({ numBlocks, bytesPerBlock }), { hostViews: true });
