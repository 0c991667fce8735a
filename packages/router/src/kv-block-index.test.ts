import type { KvEvent, Tier } from '@kvmgr/core';
import { isKvmgrError } from '@kvmgr/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { localKeysFromBlockIds, localKeysFromTokens } from './hash64.js';
import { KvBlockIndex, createPrefixMatch } from './kv-block-index.js';

const BS = 4;
/** Four token sequences of 6 blocks; sequences 1 and 2 share their first two blocks. */
const SEQS: number[][] = [0, 1, 2, 3].map((s) =>
  Array.from({ length: 6 * BS }, (_, i) => (s === 2 && i < 2 * BS ? 1000 + i : s * 1000 + i)),
);
const LOCAL = SEQS.map((t) => localKeysFromTokens(t, BS));
const INSTANCES = ['a', 'b', 'c'];
const MEDIA: (string | null)[] = [null, 'GPU', 'CPU', 'DISK'];

function engineHash(inst: number, seq: number, block: number): bigint {
  // engines hash with their own per-process seeds: different per instance
  return BigInt(inst * 1_000_003 + seq * 100 + block + 1);
}

function localKey(seq: number, block: number): string {
  const k = LOCAL[seq] as Uint32Array;
  return `${k[2 * block]}:${k[2 * block + 1]}`;
}

function tierOfMedium(m: string | null): Tier {
  return m === 'CPU' ? 'cpu' : m === 'DISK' ? 'disk' : 'gpu';
}

type Op =
  | { kind: 'store'; inst: number; seq: number; from: number; count: number; medium: string | null }
  | { kind: 'remove'; inst: number; seq: number; from: number; count: number; medium: string | null }
  | { kind: 'clear'; inst: number; medium: string | null };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant('store' as const),
    inst: fc.integer({ min: 0, max: 3 }),
    seq: fc.integer({ min: 0, max: 2 }),
    from: fc.integer({ min: 0, max: 5 }),
    count: fc.integer({ min: 1, max: 3 }),
    medium: fc.constantFrom(...MEDIA),
  }),
  fc.record({
    kind: fc.constant('remove' as const),
    inst: fc.integer({ min: 0, max: 3 }),
    seq: fc.integer({ min: 0, max: 2 }),
    from: fc.integer({ min: 0, max: 5 }),
    count: fc.integer({ min: 1, max: 3 }),
    medium: fc.constantFrom(...MEDIA),
  }),
  fc.record({ kind: fc.constant('clear' as const), inst: fc.integer({ min: 0, max: 3 }), medium: fc.constantFrom(null, 'CPU') }),
);

/** The reference model: plain maps and sets. Instance 3 is never registered. */
class Model {
  engine = INSTANCES.map(() => new Map<bigint, { key: string; tiers: Set<Tier> }>());
  holders = new Map<string, Set<string>>();
  stats = { unknownInstanceEvents: 0, unknownKeyRemovals: 0, unknownParentBlocks: 0 };

  apply(op: Op): void {
    const em = this.engine[op.inst];
    if (em === undefined) {
      this.stats.unknownInstanceEvents++;
      return;
    }
    const name = INSTANCES[op.inst] as string;
    if (op.kind === 'store') {
      const count = Math.min(op.count, 6 - op.from);
      if (op.from > 0 && !em.has(engineHash(op.inst, op.seq, op.from - 1))) {
        this.stats.unknownParentBlocks += count;
        return;
      }
      const tier = tierOfMedium(op.medium);
      for (let b = op.from; b < op.from + count; b++) {
        const h = engineHash(op.inst, op.seq, b);
        const key = localKey(op.seq, b);
        const e = em.get(h) ?? { key, tiers: new Set<Tier>() };
        e.tiers.add(tier);
        em.set(h, e);
        const set = this.holders.get(key) ?? new Set<string>();
        set.add(`${name}|${tier}`);
        this.holders.set(key, set);
      }
    } else if (op.kind === 'remove') {
      const count = Math.min(op.count, 6 - op.from);
      const tier = tierOfMedium(op.medium);
      for (let b = op.from; b < op.from + count; b++) {
        const h = engineHash(op.inst, op.seq, b);
        const e = em.get(h);
        if (e === undefined || !e.tiers.has(tier)) {
          this.stats.unknownKeyRemovals++;
          continue;
        }
        e.tiers.delete(tier);
        if (e.tiers.size === 0) em.delete(h);
        this.drop(e.key, `${name}|${tier}`);
      }
    } else {
      const tiers: Tier[] = op.medium === null ? ['gpu', 'cpu', 'disk'] : ['cpu'];
      for (const [h, e] of em) {
        for (const t of tiers) {
          if (e.tiers.delete(t)) this.drop(e.key, `${name}|${t}`);
        }
        if (e.tiers.size === 0) em.delete(h);
      }
    }
  }

  private drop(key: string, holder: string): void {
    const set = this.holders.get(key);
    set?.delete(holder);
    if (set?.size === 0) this.holders.delete(key);
  }
}

function toEvent(op: Op): KvEvent {
  if (op.kind === 'clear') return op.medium === null ? { type: 'AllBlocksCleared' } : { type: 'AllBlocksCleared', medium: op.medium };
  const count = Math.min(op.count, 6 - op.from);
  const hashes = Array.from({ length: count }, (_, i) => engineHash(op.inst, op.seq, op.from + i));
  if (op.kind === 'remove') return { type: 'BlockRemoved', blockHashes: hashes, medium: op.medium };
  return {
    type: 'BlockStored',
    blockHashes: hashes,
    parentBlockHash: op.from === 0 ? null : engineHash(op.inst, op.seq, op.from - 1),
    tokenIds: (SEQS[op.seq] as number[]).slice(op.from * BS, (op.from + count) * BS),
    blockSize: BS,
    medium: op.medium,
  };
}

function indexHolders(index: KvBlockIndex): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const [hi, lo] of index.keys()) {
    const hs = index.holders(hi, lo);
    if (hs.length > 0) out.set(`${hi}:${lo}`, new Set(hs.map((h) => `${h.instanceId}|${h.tier}`)));
  }
  return out;
}

describe('KvBlockIndex', () => {
  it('key halves at or above 2^31 match by their 32 bits, given as u32 or as int32', () => {
    // the index carries halves as int32 internally (no boxed numbers); a key written as u32 is the same key read as int32
    const index = new KvBlockIndex({ maxKeys: 64 });
    const u32 = Uint32Array.from([0x80000001, 0xfffffffe, 0xdeadbeef, 0x00000001, 0x7fffffff, 0x80000000]);
    index.recordBlocks('a', u32);
    const i32 = Array.from(new Int32Array(u32.buffer)) as unknown as Uint32Array;
    expect(Array.from(i32 as ArrayLike<number>).slice(0, 2)).toEqual([-2147483647, -2]);
    expect(index.prefixLength('a', u32)).toBe(3);
    expect(index.prefixLength('a', i32)).toBe(3);
    const m = createPrefixMatch(index.maxInstances);
    index.matchPrefix(i32, 3, 0, m);
    expect(m.matchedBlocks[index.instanceIndex('a')]).toBe(3);
    expect(index.holders(-2147483647, -2)).toEqual([{ instanceId: 'a', tier: 'gpu' }]);
    expect(index.holders(0x80000001, 0xfffffffe)).toEqual([{ instanceId: 'a', tier: 'gpu' }]);
    expect(index.keys()).toEqual([
      [0x80000001, 0xfffffffe],
      [0xdeadbeef, 1],
      [0x7fffffff, 0x80000000],
    ]);
    index.removeBlocks('a', i32, 'gpu', 0, 1);
    expect(index.size).toBe(2);
    expect(index.stats.unknownKeyRemovals).toBe(0);
  });

  it('keys blocks from events the same way requests are keyed (two key spaces agree)', () => {
    const index = new KvBlockIndex({ maxKeys: 64 });
    index.addInstance('a');
    const tokens = SEQS[0] as number[];
    index.applyEvent('a', { type: 'BlockStored', blockHashes: [11n, 12n], parentBlockHash: null, tokenIds: tokens.slice(0, 8), blockSize: BS });
    index.applyEvent('a', { type: 'BlockStored', blockHashes: [13n], parentBlockHash: 12n, tokenIds: tokens.slice(8, 12), blockSize: BS });
    const req = localKeysFromTokens(tokens, BS);
    const m = createPrefixMatch(index.maxInstances);
    index.matchPrefix(req, 6, 0, m);
    expect(m.matchedBlocks[index.instanceIndex('a')]).toBe(3);
    expect(m.weightedBlocks[index.instanceIndex('a')]).toBe(3);
    expect(index.size).toBe(3);
  });

  it('matches consecutive blocks with tier weights (golden)', () => {
    const index = new KvBlockIndex({ maxKeys: 64 });
    const keys = localKeysFromBlockIds([1, 2, 3, 4, 5]);
    index.recordBlocks('a', keys, 'gpu', 0, 4); // blocks 0..3 on GPU
    index.recordBlocks('b', keys, 'cpu', 0, 2); // blocks 0..1 on CPU
    index.recordBlocks('b', keys, 'gpu', 0, 1); // block 0 also on GPU
    index.recordBlocks('c', keys, 'gpu', 1, 5); // no block 0: nothing consecutive
    index.recordBlocks('d', keys, 'disk', 0, 1);
    const m = createPrefixMatch(index.maxInstances);
    index.matchPrefix(keys, 5, 0, m);
    const at = (id: string) => [m.matchedBlocks[index.instanceIndex(id)], m.weightedBlocks[index.instanceIndex(id)]];
    expect(at('a')).toEqual([4, 4]);
    expect(at('b')[0]).toBe(2);
    expect(at('b')[1]).toBeCloseTo(1.8, 12); // gpu 1.0 + cpu 0.8
    expect(at('c')).toEqual([0, 0]);
    expect(at('d')).toEqual([1, 0.5]);
    expect(m.totalBlocks).toBe(5);
  });

  it('equals the reference model under any interleaving of stored / removed / cleared events', () => {
    fc.assert(
      fc.property(fc.array(opArb, { minLength: 10, maxLength: 80, size: 'max' }), (ops) => {
        const index = new KvBlockIndex({ maxKeys: 1024, maxInstancesPerKey: 16 });
        for (const id of INSTANCES) index.addInstance(id);
        const model = new Model();
        for (const op of ops) {
          model.apply(op);
          index.applyEvent(op.inst === 3 ? 'ghost' : (INSTANCES[op.inst] as string), toEvent(op));
        }
        expect(indexHolders(index)).toEqual(model.holders);
        expect(index.size).toBe(model.holders.size);
        expect(index.stats.unknownInstanceEvents).toBe(model.stats.unknownInstanceEvents);
        expect(index.stats.unknownKeyRemovals).toBe(model.stats.unknownKeyRemovals);
        expect(index.stats.unknownParentBlocks).toBe(model.stats.unknownParentBlocks);
        expect(index.stats.eventsApplied).toBe(ops.filter((o) => o.inst !== 3).length);
      }),
      { numRuns: 500 },
    );
  });

  it('equals an LRU reference model under direct records and removals (key and holder bounds)', () => {
    const recArb = fc.record({
      remove: fc.boolean(),
      inst: fc.integer({ min: 0, max: 2 }),
      key: fc.integer({ min: 0, max: 15 }),
      len: fc.integer({ min: 1, max: 4 }),
      tier: fc.constantFrom<Tier>('gpu', 'cpu'),
    });
    fc.assert(
      fc.property(fc.array(recArb, { minLength: 10, maxLength: 120, size: 'max' }), (ops) => {
        const index = new KvBlockIndex({ maxKeys: 8, maxInstancesPerKey: 2 });
        const model = new Map<number, string[]>(); // insertion order = LRU order
        let unknown = 0;
        let keysEvicted = 0;
        let holdersEvicted = 0;
        for (const op of ops) {
          const id = INSTANCES[op.inst] as string;
          // runs of consecutive keys exercise the "next entry" guess of the prefix walk
          const run = Array.from({ length: op.len }, (_, i) => (op.key + i) % 16);
          const keys = localKeysFromBlockIds(run);
          const h = `${id}|${op.tier}`;
          if (op.remove) {
            index.addInstance(id);
            index.removeBlocks(id, keys, op.tier);
          } else {
            index.recordBlocks(id, keys, op.tier);
          }
          for (const key of run) {
            if (op.remove) {
              const hs = model.get(key);
              const at = hs?.indexOf(h) ?? -1;
              if (hs === undefined || at < 0) unknown++;
              else {
                hs.splice(at, 1);
                if (hs.length === 0) model.delete(key);
              }
              continue;
            }
            let hs = model.get(key);
            if (hs === undefined) {
              if (model.size === 8) {
                model.delete(model.keys().next().value as number);
                keysEvicted++;
              }
              hs = [];
            }
            model.delete(key);
            model.set(key, hs);
            if (!hs.includes(h)) {
              if (hs.length === 2) {
                hs.shift();
                holdersEvicted++;
              }
              hs.push(h);
            }
          }
        }
        // the prefix walk agrees with a walk over the model
        const probe = Array.from({ length: 6 }, (_, i) => (ops.length + i) % 16);
        const m = createPrefixMatch(index.maxInstances);
        index.matchPrefix(localKeysFromBlockIds(probe), probe.length, 0, m);
        for (const id of INSTANCES) {
          let want = 0;
          while (want < probe.length && (model.get(probe[want] as number) ?? []).some((x) => x.startsWith(`${id}|`))) want++;
          const slot = index.instanceIndex(id);
          expect(slot < 0 ? 0 : m.matchedBlocks[slot]).toBe(want);
          expect(index.prefixLength(id, localKeysFromBlockIds(probe))).toBe(want);
        }
        const got = new Map<number, string[]>();
        for (const [hi, lo] of index.keys()) {
          expect(hi).toBe(0);
          got.set(lo, index.holders(hi, lo).map((x) => `${x.instanceId}|${x.tier}`));
        }
        const want = new Map([...model].map(([k, v]) => [k, [...v].sort()]));
        expect(new Map([...got].map(([k, v]) => [k, [...v].sort()]))).toEqual(want);
        expect(index.stats.unknownKeyRemovals).toBe(unknown);
        expect(index.stats.keysEvicted).toBe(keysEvicted);
        expect(index.stats.holdersEvicted).toBe(holdersEvicted);
      }),
      { numRuns: 500 },
    );
  });

  it('keeps speculative entries until their TTL, and a confirmed copy replaces them', () => {
    const index = new KvBlockIndex({ maxKeys: 64 });
    const keys = localKeysFromBlockIds([1, 2, 3]);
    index.addSpeculative('a', keys, 0, 3, 1000);
    expect(index.holders(0, 1, 999)).toEqual([{ instanceId: 'a', tier: 'speculative' }]);
    expect(index.holders(0, 1, 1000)).toEqual([]);
    const m = createPrefixMatch(index.maxInstances);
    index.matchPrefix(keys, 3, 500, m);
    expect(m.matchedBlocks[index.instanceIndex('a')]).toBe(3);
    index.matchPrefix(keys, 3, 1500, m);
    expect(m.matchedBlocks[index.instanceIndex('a')]).toBe(0);
    index.recordBlocks('a', keys, 'gpu', 0, 1);
    expect(index.holders(0, 1, 0)).toEqual([{ instanceId: 'a', tier: 'gpu' }]);
    index.addSpeculative('a', keys, 0, 1, 5000); // already confirmed: no speculative copy
    expect(index.holders(0, 1, 0)).toEqual([{ instanceId: 'a', tier: 'gpu' }]);
  });

  it('per-key bound: speculative holders go first and never displace confirmed copies', () => {
    const index = new KvBlockIndex({ maxKeys: 8, maxInstancesPerKey: 2 });
    const k = localKeysFromBlockIds([1]);
    index.recordBlocks('a', k);
    index.addSpeculative('s1', k, 0, 1, 100);
    index.recordBlocks('b', k); // evicts the speculative s1, not a
    expect(index.holders(0, 1).map((h) => h.instanceId)).toEqual(['a', 'b']);
    index.addSpeculative('s2', k, 0, 1, 100); // full of confirmed copies: dropped
    expect(index.holders(0, 1).map((h) => h.instanceId)).toEqual(['a', 'b']);
    index.recordBlocks('c', k); // confirmed: the oldest (a) goes
    expect(index.holders(0, 1).map((h) => h.instanceId)).toEqual(['b', 'c']);
    expect(index.stats.holdersEvicted).toBe(2);
  });

  it('clear(instance) and removeInstance drop every block of that instance only', () => {
    const index = new KvBlockIndex({ maxKeys: 64 });
    const keys = localKeysFromBlockIds([1, 2, 3, 4]);
    index.recordBlocks('a', keys);
    index.recordBlocks('b', keys, 'gpu', 0, 2);
    index.recordBlocks('a', keys, 'cpu', 0, 1);
    index.clear('a', 'cpu');
    expect(index.holders(0, 1).map((h) => `${h.instanceId}|${h.tier}`)).toEqual(['a|gpu', 'b|gpu']);
    index.clear('a');
    expect(index.size).toBe(2);
    index.removeInstance('b');
    expect(index.size).toBe(0);
    expect(index.instanceIndex('b')).toBe(-1);
    index.applyEvent('b', { type: 'AllBlocksCleared' });
    expect(index.stats.unknownInstanceEvents).toBe(1);
  });

  it('counts malformed events and leaves the index unchanged', () => {
    const index = new KvBlockIndex({ maxKeys: 64 });
    index.addInstance('a');
    index.applyEvent('a', { type: 'BlockStored', blockHashes: [1n, 2n], parentBlockHash: null, tokenIds: [1, 2, 3], blockSize: BS });
    index.applyEvent('a', { type: 'BlockStored', blockHashes: [1n], parentBlockHash: null, tokenIds: [1, 2, 3, 4], blockSize: BS, medium: 'TAPE' });
    expect(index.stats.malformedEvents).toBe(2);
    expect(index.size).toBe(0);
  });

  it('rejects bad arguments with KvmgrError and stays unchanged', () => {
    expect(() => new KvBlockIndex({ maxKeys: 0 })).toThrow(/maxKeys/);
    expect(() => new KvBlockIndex({ tierWeights: { cpu: -1 } })).toThrow(/tierWeights.cpu/);
    const index = new KvBlockIndex({ maxKeys: 8, maxInstances: 1 });
    index.recordBlocks('a', localKeysFromBlockIds([1]));
    try {
      index.recordBlocks('a', localKeysFromBlockIds([2]), 'tape' as Tier);
      expect.unreachable();
    } catch (e) {
      expect(isKvmgrError(e, 'KVMGR_INVALID_ARGUMENT')).toBe(true);
    }
    expect(() => index.addInstance('b')).toThrow(/maxInstances/);
    expect(index.size).toBe(1);
    expect(index.instances()).toEqual(['a']);
  });

  it('maps engine hashes by identity in identity mode (trace-driven simulators)', () => {
    const index = new KvBlockIndex({ maxKeys: 64, engineKeys: 'identity' });
    index.addInstance('a');
    index.applyEvent('a', { type: 'BlockStored', blockHashes: [7n, 8n], parentBlockHash: null, tokenIds: [], blockSize: BS });
    const m = createPrefixMatch(index.maxInstances);
    index.matchPrefix(localKeysFromBlockIds([7, 8, 9]), 3, 0, m);
    expect(m.matchedBlocks[0]).toBe(2);
    index.applyEvent('a', { type: 'BlockRemoved', blockHashes: [8n] });
    index.matchPrefix(localKeysFromBlockIds([7, 8, 9]), 3, 0, m);
    expect(m.matchedBlocks[0]).toBe(1);
  });

  it('survives heavy churn with backward-shift deletion (every live key still found)', () => {
    const index = new KvBlockIndex({ maxKeys: 512 });
    const live = new Set<number>();
    let x = 12345;
    for (let i = 0; i < 20000; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      const k = x % 700;
      const keys = localKeysFromBlockIds([k]);
      if (live.has(k) && (x & 1) === 0) {
        index.removeBlocks('a', keys);
        live.delete(k);
      } else if (live.size < 512) {
        index.recordBlocks('a', keys);
        live.add(k);
      }
    }
    expect(index.size).toBe(live.size);
    for (const k of live) expect(index.holders(0, k).length).toBe(1);
  });
});
