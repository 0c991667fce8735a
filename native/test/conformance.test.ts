/** Check 1: the conformance suite on every backend available here without a GPU. */
import { existsSync } from 'node:fs';
import { isKvmgrError } from '@kvmgr/core';
import { describe, expect, it } from 'vitest';
import { loadAddon } from '../src/addon.js';
import { createArena, listBackends, nativeAddonStatus } from '../src/index.js';
import { arenaFactory, conformanceSuite, expectKvmgrError } from './conformance.js';

describe('this machine', () => {
  it('loads the addon and reports host and ts-fallback available', () => {
    expect(nativeAddonStatus()).toMatchObject({ loaded: true, reason: '', napiVersion: 8 });
    const rows = listBackends();
    expect(rows.map((r) => r.name)).toEqual(['cuda', 'rocm', 'ascend', 'host', 'ts-fallback']);
    expect(rows.find((r) => r.name === 'host')).toMatchObject({ compiled: true, available: true, reason: '' });
    expect(rows.find((r) => r.name === 'ts-fallback')).toMatchObject({ compiled: true, available: true });
    for (const r of rows.slice(0, 3)) {
      expect(r.compiled).toBe(true);
      // No GPU here: each device backend says why (library missing, driver too old, no device).
      if (!r.available) expect(r.reason.length).toBeGreaterThan(0);
    }
  });

  it('host: huge pages for big slabs, mlock within RLIMIT_MEMLOCK, device location refused', async () => {
    const big = createArena({ backend: 'host', numBlocks: 64, bytesPerBlock: 64 * 1024 });
    expect(big.backend).toBe('host');
    expect(big.location).toBe('host');
    expect(big.tier).toBe('cpu');
    // madvise(MADV_HUGEPAGE) succeeds wherever the kernel has transparent huge pages.
    expect(big.hugePages).toBe(existsSync('/sys/kernel/mm/transparent_hugepage/enabled'));
    const small = createArena({ backend: 'host', numBlocks: 4, bytesPerBlock: 4096 });
    expect(small.hugePages).toBe(false);
    small.close();
    big.close();
    const locked = createArena({ backend: 'host', numBlocks: 4, bytesPerBlock: 4096, lock: true, hugePages: false });
    expect(locked.locked).toBe(true);
    locked.close();
    await expectKvmgrError(() => createArena({ backend: 'host', numBlocks: 4, bytesPerBlock: 64, location: 'device' }), 'KVMGR_INVALID_ARGUMENT');
    await expectKvmgrError(() => createArena({ backend: 'nope' as 'host', numBlocks: 4, bytesPerBlock: 64 }), 'KVMGR_INVALID_ARGUMENT');
    await expectKvmgrError(() => createArena(null as unknown as Parameters<typeof createArena>[0]), 'KVMGR_INVALID_ARGUMENT');
  });
});

describe('the raw addon boundary', () => {
  it('answers garbage with coded errors, never a crash', () => {
    const addon = loadAddon().addon;
    expect(addon).toBeDefined();
    if (!addon) return;
    const codeOf = (fn: () => unknown): string => {
      try {
        fn();
      } catch (e) {
        expect(isKvmgrError(e)).toBe(false); // plain Error with a code: the TS layer wraps it
        return (e as { code?: string }).code ?? 'none';
      }
      return 'no throw';
    };
    type Raw = Record<'write' | 'read' | 'copyTo' | 'copyToSync' | 'close', (...a: unknown[]) => unknown>;
    const A = addon.Arena as unknown as new (o?: unknown) => Raw;
    const base = { backend: 'host', numBlocks: 4, bytesPerBlock: 64, location: 'host', device: 0, hugePages: false, lock: false, libraries: [] };
    expect(codeOf(() => new A())).toBe('KVMGR_INVALID_ARGUMENT');
    expect(codeOf(() => new A(42))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(codeOf(() => new A({ ...base, backend: 'tpu' }))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(codeOf(() => new A({ ...base, numBlocks: -1 }))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(codeOf(() => new A({ ...base, numBlocks: Number.NaN }))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(codeOf(() => new A({ ...base, bytesPerBlock: 2 ** 60, numBlocks: 2 ** 20 }))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(codeOf(() => new A({ ...base, location: 'device' }))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(codeOf(() => new A({ ...base, backend: 'cuda', libraries: [] }))).toBe('KVMGR_UNAVAILABLE');
    const a = new A(base);
    const b = new A(base);
    expect(codeOf(() => a.write('x', new Uint8Array(4), 0))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(codeOf(() => a.write(0, new Float32Array(4), 0))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(codeOf(() => a.write(0, new Uint8Array(4), 61))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(codeOf(() => a.read(4, new Uint8Array(4), 0))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(codeOf(() => a.copyToSync({}, new Uint32Array(1), new Uint32Array(1)))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(codeOf(() => a.copyToSync(b, [0], [0]))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(codeOf(() => a.copyToSync(b, Uint32Array.of(0), Uint32Array.of(9)))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(codeOf(() => a.copyTo(b, Uint32Array.of(0, 1), Uint32Array.of(0)))).toBe('KVMGR_INVALID_ARGUMENT');
    a.close();
    expect(codeOf(() => a.read(0, new Uint8Array(4), 0))).toBe('KVMGR_INVALID_STATE');
    expect(codeOf(() => b.copyToSync(a, Uint32Array.of(0), Uint32Array.of(0)))).toBe('KVMGR_INVALID_STATE');
    b.close();
  });
});

conformanceSuite('host (native addon)', arenaFactory({ backend: 'host' }), { hostViews: true, peer: arenaFactory({ backend: 'ts-fallback' }) });
conformanceSuite('host, huge pages off', arenaFactory({ backend: 'host', hugePages: false }), { hostViews: true });
conformanceSuite('ts-fallback', arenaFactory({ backend: 'ts-fallback' }), { hostViews: true, peer: arenaFactory({ backend: 'host' }) });
