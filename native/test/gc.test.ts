/**
 * Memory goes back on garbage collection, and views keep it alive. Runs in a child process with
 * --expose-gc against the built addon, measuring resident memory.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const addon = fileURLToPath(new URL('../build/Release/kvmgr_native.node', import.meta.url));

function child(code: string): Record<string, number> {
  const out = execFileSync(process.execPath, ['--expose-gc', '-e', code], { env: { ...process.env, KVMGR_ADDON: addon }, encoding: 'utf8' });
  return JSON.parse(out) as Record<string, number>;
}

describe('garbage collection', () => {
  it('frees dropped arenas: 48 × 32 MiB touched slabs never close, resident memory stays bounded', () => {
    // The views (external ArrayBuffers) hold the slabs too: both finalizers must run.
    const r = child(`
      const { Arena } = require(process.env.KVMGR_ADDON);
      const tick = () => new Promise((r) => setImmediate(r));
      (async () => {
      const rss0 = process.memoryUsage().rss;
      let peak = 0;
      for (let i = 0; i < 48; i++) {
        const a = new Arena({ backend: 'host', numBlocks: 32, bytesPerBlock: 1 << 20, location: 'host', device: 0, hugePages: false, lock: false, libraries: [] });
        new Uint8Array(a.buffer()).fill(i);   // touch every page
        globalThis.gc();
        // Node runs N-API finalizers from the event loop, not inside gc().
        await tick();
        await tick();
        peak = Math.max(peak, process.memoryUsage().rss - rss0);
      }
      console.log(JSON.stringify({ peakMiB: peak / 2 ** 20 }));
      })();
    `);
    // Without finalizers this would be 48 × 32 MiB = 1.5 GiB.
    expect(r.peakMiB).toBeLessThan(400);
  });

  it('a view outlives its dropped arena and reads the same bytes', () => {
    const r = child(`
      const { Arena } = require(process.env.KVMGR_ADDON);
      let view;
      {
        const a = new Arena({ backend: 'host', numBlocks: 4, bytesPerBlock: 4096, location: 'host', device: 0, hugePages: false, lock: false, libraries: [] });
        a.write(3, new Uint8Array(4096).fill(7), 0);
        view = new Uint8Array(a.buffer());
      }
      for (let i = 0; i < 5; i++) globalThis.gc();
      // churn the allocator so freed memory would be reused
      const junk = [];
      for (let i = 0; i < 100; i++) junk.push(new Arena({ backend: 'host', numBlocks: 4, bytesPerBlock: 4096, location: 'host', device: 0, hugePages: false, lock: false, libraries: [] }));
      for (const j of junk) new Uint8Array(j.buffer()).fill(1);
      console.log(JSON.stringify({ length: view.byteLength, sum: view.subarray(3 * 4096).reduce((s, x) => s + x, 0) }));
    `);
    expect(r).toEqual({ length: 16384, sum: 7 * 4096 });
  });
});
