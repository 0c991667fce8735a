/**
 * The arena conformance suite: one set of tests every backend must pass (host addon, TS
 * fallback, and CUDA / ROCm / Ascend through the fake runtimes). Called from the test files with
 * a factory that makes arenas on the backend under test.
 */
import { createRng, isKvmgrError } from '@kvmgr/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type DeviceArena, createArena } from '../src/index.js';

/** Makes an arena of the backend under test. */
export type ArenaFactory = (numBlocks: number, bytesPerBlock: number) => DeviceArena;

/** Expects `fn` to throw (or reject with) a KvmgrError with `code`. */
export async function expectKvmgrError(fn: () => unknown, code: string): Promise<void> {
  let caught: unknown;
  try {
    await fn();
  } catch (e) {
    caught = e;
  }
  expect(isKvmgrError(caught), `expected KvmgrError ${code}, got ${String(caught)}`).toBe(true);
  expect((caught as { code: string }).code).toBe(code);
}

/** A seeded byte pattern for (block, seed). */
export function pattern(bytes: number, seed: number): Uint8Array {
  const rng = createRng(seed);
  const out = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) out[i] = Math.floor(rng.next() * 256);
  return out;
}

function fillAll(a: DeviceArena, seedBase: number): Uint8Array[] {
  const model: Uint8Array[] = [];
  for (let b = 0; b < a.numBlocks; b++) {
    const p = pattern(a.bytesPerBlock, seedBase + b);
    a.writeBlock(b, p);
    model.push(p);
  }
  return model;
}

function expectBlocks(a: DeviceArena, model: readonly Uint8Array[]): void {
  for (let b = 0; b < model.length; b++) {
    const got = a.readBlock(b);
    // Compare as Buffers: a mismatch prints offsets instead of 4096 numbers.
    expect(Buffer.from(got).equals(Buffer.from(model[b] as Uint8Array)), `block ${b}`).toBe(true);
  }
}

/** Applies a copy batch to a reference model (all sources read first). */
function modelCopy(from: Uint8Array[], to: Uint8Array[], src: readonly number[], dst: readonly number[]): void {
  const values = src.map((s) => from[s] as Uint8Array);
  dst.forEach((d, i) => {
    to[d] = values[i] as Uint8Array;
  });
}

/**
 * Registers the conformance suite.
 * @param label - backend label in test names.
 * @param make - arena factory for the backend under test.
 * @param options - `hostViews`: the arenas are CPU-addressable (zero-copy views);
 *   `peer`: a second factory (another backend) for cross-backend copies.
 */
export function conformanceSuite(label: string, make: ArenaFactory, options: { hostViews: boolean; peer?: ArenaFactory }): void {
  describe(`arena conformance: ${label}`, () => {
    it('allocates a slab with the asked geometry', () => {
      const a = make(8, 4096);
      expect([a.numBlocks, a.bytesPerBlock, a.byteLength]).toEqual([8, 4096, 8 * 4096]);
      expect(a.blockOffset(0)).toBe(0);
      expect(a.blockOffset(7)).toBe(7 * 4096);
      expect(a.closed).toBe(false);
      a.close();
      expect(a.closed).toBe(true);
    });

    it('writes patterns into blocks and reads them back byte-exact', () => {
      const a = make(16, 1000);
      const model = fillAll(a, 100);
      expectBlocks(a, model);
      // partial write at an offset, partial read at an offset
      const part = pattern(37, 9);
      a.writeBlock(5, part, 900);
      const whole = a.readBlock(5);
      expect(Buffer.from(whole.subarray(0, 900)).equals(Buffer.from((model[5] as Uint8Array).subarray(0, 900)))).toBe(true);
      expect(Buffer.from(whole.subarray(900, 937)).equals(Buffer.from(part))).toBe(true);
      expect(Buffer.from(a.readBlock(5, new Uint8Array(37), 900)).equals(Buffer.from(part))).toBe(true);
      a.close();
    });

    it('copies blocks between arenas (async batch) byte-exact, untouched blocks kept', async () => {
      const a = make(12, 2048);
      const b = make(10, 2048);
      const ma = fillAll(a, 1000);
      const mb = fillAll(b, 2000);
      // runs (3,4,5 → 0,1,2) and scattered ids
      const src = [3, 4, 5, 11, 0, 7];
      const dst = [0, 1, 2, 9, 5, 3];
      await a.copyBlocksTo(b, { src, dst });
      modelCopy(ma, mb, src, dst);
      expectBlocks(b, mb);
      expectBlocks(a, ma);
      // the other way, synchronously
      a.copyBlocksToSync(b, { src: [1], dst: [8] });
      modelCopy(ma, mb, [1], [8]);
      await b.copyBlocksTo(a, { src: Int32Array.of(9, 8), dst: Int32Array.of(10, 11) });
      modelCopy(mb, ma, [9, 8], [10, 11]);
      expectBlocks(a, ma);
      expectBlocks(b, mb);
      a.close();
      b.close();
    });

    it('an empty batch resolves and copies nothing', async () => {
      const a = make(2, 128);
      const b = make(2, 128);
      const ma = fillAll(a, 13_000);
      const mb = fillAll(b, 14_000);
      await a.copyBlocksTo(b, { src: [], dst: [] });
      a.copyBlocksToSync(b, { src: new Uint32Array(0), dst: new Uint32Array(0) });
      expectBlocks(a, ma);
      expectBlocks(b, mb);
      a.close();
      b.close();
    });

    it('compacts within one arena, reading all sources before writing (swap)', async () => {
      const a = make(8, 512);
      const m = fillAll(a, 3000);
      await a.copyBlocksTo(a, { src: [6, 7], dst: [0, 1] });
      modelCopy(m, m, [6, 7], [0, 1]);
      expectBlocks(a, m);
      await a.copyBlocksTo(a, { src: [2, 3, 4], dst: [3, 4, 2] });
      modelCopy(m, m, [2, 3, 4], [3, 4, 2]);
      expectBlocks(a, m);
      a.copyBlocksToSync(a, { src: [0, 5], dst: [5, 0] });
      modelCopy(m, m, [0, 5], [5, 0]);
      expectBlocks(a, m);
      a.close();
    });

    it('keeps issue order across async batches that touch the same blocks', async () => {
      const a = make(4, 256);
      const b = make(4, 256);
      const ma = fillAll(a, 4000);
      const mb = fillAll(b, 5000);
      const p1 = a.copyBlocksTo(b, { src: [0], dst: [1] });
      const p2 = b.copyBlocksTo(a, { src: [1], dst: [2] }); // must see the first copy
      const p3 = a.copyBlocksTo(a, { src: [2], dst: [3] });
      await Promise.all([p1, p2, p3]);
      modelCopy(ma, mb, [0], [1]);
      modelCopy(mb, ma, [1], [2]);
      modelCopy(ma, ma, [2], [3]);
      expectBlocks(a, ma);
      expectBlocks(b, mb);
      a.close();
      b.close();
    });

    it('random write/copy sequences match a reference model (property)', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.array(
            fc.oneof(
              fc.record({ op: fc.constant('write' as const), arena: fc.nat(1), block: fc.nat(5), seed: fc.nat(1000) }),
              fc.record({
                op: fc.constant('copy' as const),
                from: fc.nat(1),
                to: fc.nat(1),
                pairs: fc.uniqueArray(fc.tuple(fc.nat(5), fc.nat(5)), { maxLength: 6, selector: (p) => p[1] }),
                sync: fc.boolean(),
              }),
            ),
            { maxLength: 12 },
          ),
          async (ops) => {
            const arenas = [make(6, 64), make(6, 64)];
            const models = arenas.map((a, i) => fillAll(a, 10_000 * (i + 1)));
            for (const o of ops) {
              if (o.op === 'write') {
                const p = pattern(64, o.seed);
                (arenas[o.arena] as DeviceArena).writeBlock(o.block, p);
                (models[o.arena] as Uint8Array[])[o.block] = p;
              } else {
                const src = o.pairs.map((p) => p[0]);
                const dst = o.pairs.map((p) => p[1]);
                const from = arenas[o.from] as DeviceArena;
                const to = arenas[o.to] as DeviceArena;
                if (o.sync) from.copyBlocksToSync(to, { src, dst });
                else await from.copyBlocksTo(to, { src, dst });
                modelCopy(models[o.from] as Uint8Array[], models[o.to] as Uint8Array[], src, dst);
              }
            }
            arenas.forEach((a, i) => {
              expectBlocks(a, models[i] as Uint8Array[]);
            });
            for (const a of arenas) a.close();
          },
        ),
        { numRuns: 25, seed: 11 },
      );
    });

    it('rejects bad arguments with KvmgrError and changes nothing', async () => {
      const a = make(4, 128);
      const b = make(4, 128);
      const c = make(4, 64);
      const ma = fillAll(a, 7000);
      const mb = fillAll(b, 8000);
      await expectKvmgrError(() => a.readBlock(4), 'KVMGR_INVALID_ARGUMENT');
      await expectKvmgrError(() => a.readBlock(-1), 'KVMGR_INVALID_ARGUMENT');
      await expectKvmgrError(() => a.readBlock(1.5), 'KVMGR_INVALID_ARGUMENT');
      await expectKvmgrError(() => a.writeBlock(4, new Uint8Array(1)), 'KVMGR_INVALID_ARGUMENT');
      await expectKvmgrError(() => a.writeBlock(0, new Uint8Array(129)), 'KVMGR_INVALID_ARGUMENT');
      await expectKvmgrError(() => a.writeBlock(0, new Uint8Array(10), 120), 'KVMGR_INVALID_ARGUMENT');
      await expectKvmgrError(() => a.writeBlock(0, [1, 2] as unknown as Uint8Array), 'KVMGR_INVALID_ARGUMENT');
      await expectKvmgrError(() => a.readBlock(0, new Uint8Array(200)), 'KVMGR_INVALID_ARGUMENT');
      await expectKvmgrError(() => a.blockOffset(9), 'KVMGR_INVALID_ARGUMENT');
      // batches: id out of range (src and dst), lengths differ, repeated destination, size mismatch
      await expectKvmgrError(() => a.copyBlocksTo(b, { src: [0, 4], dst: [0, 1] }), 'KVMGR_INVALID_ARGUMENT');
      await expectKvmgrError(() => a.copyBlocksTo(b, { src: [0, 1], dst: [0, 7] }), 'KVMGR_INVALID_ARGUMENT');
      await expectKvmgrError(() => a.copyBlocksTo(b, { src: [0, 1], dst: [0] }), 'KVMGR_INVALID_ARGUMENT');
      await expectKvmgrError(() => a.copyBlocksTo(b, { src: [0, 1], dst: [2, 2] }), 'KVMGR_INVALID_ARGUMENT');
      await expectKvmgrError(() => a.copyBlocksTo(b, { src: [-1], dst: [2] }), 'KVMGR_INVALID_ARGUMENT');
      await expectKvmgrError(() => a.copyBlocksTo(c, { src: [0], dst: [0] }), 'KVMGR_INVALID_ARGUMENT');
      await expectKvmgrError(() => a.copyBlocksToSync(c, { src: [0], dst: [0] }), 'KVMGR_INVALID_ARGUMENT');
      await expectKvmgrError(() => a.copyBlocksToSync(b, { src: [0, 9], dst: [1, 2] }), 'KVMGR_INVALID_ARGUMENT');
      // nothing was copied by the failed batches
      expectBlocks(a, ma);
      expectBlocks(b, mb);
      // zero blocks, zero bytes
      await expectKvmgrError(() => make(0, 128), 'KVMGR_INVALID_ARGUMENT');
      await expectKvmgrError(() => make(4, 0), 'KVMGR_INVALID_ARGUMENT');
      await expectKvmgrError(() => make(-3, 128), 'KVMGR_INVALID_ARGUMENT');
      await expectKvmgrError(() => make(2.5, 128), 'KVMGR_INVALID_ARGUMENT');
      for (const x of [a, b, c]) x.close();
    });

    it('throws KVMGR_INVALID_STATE on every use after close; close is idempotent', async () => {
      const a = make(4, 256);
      const b = make(4, 256);
      a.close();
      a.close();
      await expectKvmgrError(() => a.readBlock(0), 'KVMGR_INVALID_STATE');
      await expectKvmgrError(() => a.writeBlock(0, new Uint8Array(4)), 'KVMGR_INVALID_STATE');
      await expectKvmgrError(() => a.blockOffset(0), 'KVMGR_INVALID_STATE');
      await expectKvmgrError(() => a.blockView(0), 'KVMGR_INVALID_STATE');
      await expectKvmgrError(() => a.buffer(), 'KVMGR_INVALID_STATE');
      await expectKvmgrError(() => a.copyBlocksTo(b, { src: [0], dst: [0] }), 'KVMGR_INVALID_STATE');
      await expectKvmgrError(() => b.copyBlocksTo(a, { src: [0], dst: [0] }), 'KVMGR_INVALID_STATE');
      await expectKvmgrError(() => b.copyBlocksToSync(a, { src: [0], dst: [0] }), 'KVMGR_INVALID_STATE');
      // b still works
      b.writeBlock(1, pattern(256, 1));
      expect(Buffer.from(b.readBlock(1)).equals(Buffer.from(pattern(256, 1)))).toBe(true);
      b.close();
    });

    it('close while a copy is in flight: the copy lands, then memory is freed', async () => {
      const a = make(64, 4096);
      const b = make(64, 4096);
      const ids = Array.from({ length: 64 }, (_, i) => i);
      const ma = fillAll(a, 9000);
      const p = a.copyBlocksTo(b, { src: ids, dst: ids });
      a.close();
      await p;
      expectBlocks(b, ma);
      // a batch issued behind a pending one and after close rejects, never crashes
      const c = make(4, 4096);
      const q1 = b.copyBlocksTo(c, { src: [0], dst: [0] });
      const q2 = b.copyBlocksTo(c, { src: [1], dst: [1] });
      c.close();
      await q1;
      await q2.then(
        () => undefined,
        (e: unknown) => expect(isKvmgrError(e, 'KVMGR_INVALID_STATE')).toBe(true),
      );
      b.close();
    });

    if (options.hostViews) {
      it('exposes host blocks as zero-copy views; close detaches them', () => {
        const a = make(4, 1024);
        const v = a.blockView(2);
        expect(v.byteLength).toBe(1024);
        v.fill(0xab);
        expect(a.readBlock(2).every((x) => x === 0xab)).toBe(true);
        a.writeBlock(3, pattern(1024, 5));
        const whole = new Uint8Array(a.buffer());
        expect(whole.byteLength).toBe(4096);
        expect(Buffer.from(whole.subarray(3072)).equals(Buffer.from(pattern(1024, 5)))).toBe(true);
        expect(a.blockView(2).buffer).toBe(v.buffer);
        a.close();
        expect(v.byteLength).toBe(0);
        expect(whole.byteLength).toBe(0);
      });
    } else {
      it('refuses CPU views of device memory', async () => {
        const a = make(2, 64);
        await expectKvmgrError(() => a.buffer(), 'KVMGR_INVALID_STATE');
        await expectKvmgrError(() => a.blockView(0), 'KVMGR_INVALID_STATE');
        a.close();
      });
    }

    if (options.peer) {
      const peer = options.peer;
      it('copies to and from another backend byte-exact', async () => {
        const a = make(6, 512);
        const p = peer(6, 512);
        const ma = fillAll(a, 11_000);
        const mp = fillAll(p, 12_000);
        await a.copyBlocksTo(p, { src: [0, 1, 5], dst: [3, 4, 0] });
        modelCopy(ma, mp, [0, 1, 5], [3, 4, 0]);
        p.copyBlocksToSync(a, { src: [3, 2], dst: [2, 3] });
        modelCopy(mp, ma, [3, 2], [2, 3]);
        expectBlocks(a, ma);
        expectBlocks(p, mp);
        a.close();
        p.close();
      });
    }
  });
}

/** A factory over `createArena` with fixed options. */
export function arenaFactory(options: Omit<Parameters<typeof createArena>[0], 'numBlocks' | 'bytesPerBlock'>): ArenaFactory {
  return (numBlocks, bytesPerBlock) => createArena({ ...options, numBlocks, bytesPerBlock });
}
