import { isKvmgrError } from '@kvmgr/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AdaptivePolicy } from './adaptive.js';
import { replayBlockTrace } from './block-trace.js';
import { createEvictionPolicy } from './registry.js';
import { generateBlockWorkload } from './workloads.js';

const KEYS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 4294967295, 2147483648, 123456789];
type Op = { op: 'insert' | 'touch' | 'remove' | 'evict' | 'bad'; key: number; depth: number };
const opArb = fc.record({
  op: fc.constantFrom<Op['op']>('insert', 'insert', 'insert', 'touch', 'touch', 'remove', 'evict', 'bad'),
  key: fc.constantFrom(...KEYS),
  depth: fc.integer({ min: 0, max: 3 }),
});

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    if (!isKvmgrError(e)) throw e;
    return e.code;
  }
}

/** What an outside observer sees of a policy. */
function snapshot(p: { size: number; victim(): number; has(k: number): boolean }): [number, number, boolean[]] {
  return [p.size, p.victim(), KEYS.map((k) => p.has(k))];
}

describe('AdaptivePolicy', () => {
  it.each(['lru', 'lfu', 'arc', 's3fifo', 'gdsf', 'predictive'])('with the single expert %s it is that expert, operation for operation', (name) => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 150 }), (ops) => {
        const cap = 5;
        const a = new AdaptivePolicy({ capacity: cap, experts: [name] });
        const ref = createEvictionPolicy(name, { capacity: cap });
        for (const { op, key, depth } of ops) {
          const info = { depth, promptBlocks: 4, nowUs: 0 };
          if (op === 'insert' || op === 'bad') {
            if (op === 'bad') expect(codeOf(() => a.insert(key, { cost: -1 }))).toBe('KVMGR_INVALID_ARGUMENT');
            else if (!ref.has(key)) {
              while (ref.size >= cap) {
                const v = ref.victim();
                expect(a.victim()).toBe(v);
                ref.remove(v);
                a.remove(v);
              }
              ref.insert(key, info);
              a.insert(key, info);
            } else {
              ref.touch(key, info);
              a.insert(key, info);
            }
          } else if (op === 'touch') {
            ref.touch(key, info);
            a.touch(key, info);
          } else if (op === 'remove') {
            ref.remove(key);
            a.remove(key);
          } else {
            const v = ref.victim();
            expect(a.victim()).toBe(v);
            if (v !== -1) {
              ref.remove(v);
              a.remove(v);
            }
          }
          expect(snapshot(a)).toEqual(snapshot(ref));
        }
      }),
      { numRuns: 60 },
    );
  });

  it.each([
    ['exact (the followed simulation is the cache)', {}],
    ['sampled (miniature simulations, full-size followed expert)', { exactCapacity: 1, sampledKeys: 2 }],
  ])('switching between all experts keeps a consistent resident set; a throw changes nothing: %s', (_mode, modeOptions) => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 300 }), (ops) => {
        const cap = 4;
        // switch as eagerly as possible: compare every 4 sampled accesses, no warm-up, no margin
        const a = new AdaptivePolicy({ capacity: cap, warmup: 0, evaluateEvery: 4, margin: 0, confidence: 0, ...modeOptions });
        expect(a.state().sampleRate).toBe('sampledKeys' in modeOptions ? 0.5 : 1);
        const model = new Set<number>(); // the reference: resident = inserted and not removed
        for (const { op, key, depth } of ops) {
          const info = { depth, promptBlocks: 4, nowUs: 0 };
          const before = snapshot(a);
          if (op === 'bad') {
            expect(codeOf(() => a.insert(-1))).toBe('KVMGR_INVALID_ARGUMENT');
            expect(codeOf(() => a.insert(key, { reuseProbability: 2 } as never))).toBe('KVMGR_INVALID_ARGUMENT');
            expect(codeOf(() => a.touch(key, { size: 0 }))).toBe('KVMGR_INVALID_ARGUMENT');
            expect(snapshot(a)).toEqual(before);
          } else if (op === 'insert') {
            if (!model.has(key) && model.size >= cap) {
              expect(codeOf(() => a.insert(key, info))).toBe('KVMGR_INVALID_STATE');
              expect(snapshot(a)).toEqual(before);
            } else {
              a.insert(key, info);
              model.add(key);
            }
          } else if (op === 'touch') a.touch(key, info);
          else if (op === 'remove') {
            a.remove(key);
            model.delete(key);
          } else {
            const v = a.victim();
            if (model.size === 0) expect(v).toBe(-1);
            else {
              expect(model.has(v)).toBe(true);
              a.remove(v);
              model.delete(v);
            }
          }
          expect(a.size).toBe(model.size);
          for (const k of KEYS) expect(a.has(k)).toBe(model.has(k));
          expect(a.size).toBeLessThanOrEqual(cap);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('a switch decided during an insert happens after it: the inserted key stays resident', () => {
    // found by the property above: the comparison fell due inside insert(8) and handed the
    // cache to another expert before the key was applied to the one the insert had started on
    const a = new AdaptivePolicy({ capacity: 4, warmup: 0, evaluateEvery: 4, margin: 0, confidence: 0 });
    const info = { depth: 0, promptBlocks: 4, nowUs: 0 };
    a.insert(0, info);
    a.remove(a.victim());
    a.insert(0, info);
    a.insert(0, info);
    a.insert(8, info);
    expect(a.state().switches).toBe(1);
    expect([a.size, a.has(0), a.has(8)]).toEqual([2, true, true]);
  });

  it('switches to the expert whose simulation leads, and clear() starts over', () => {
    const a = new AdaptivePolicy({ capacity: 1000 });
    expect(a.state().following).toBe('predictive');
    // phase-shift: Zipf RAG, then agentic sessions: at 3k blocks the simulations prefer ARC
    const b = new AdaptivePolicy({ capacity: 3000 });
    const r = replayBlockTrace(generateBlockWorkload('phase-shift'), b, 3000);
    expect(b.state().switches).toBeGreaterThan(0);
    expect(b.state().sampleRate).toBe(1);
    const lru = replayBlockTrace(generateBlockWorkload('phase-shift'), createEvictionPolicy('lru'), 3000);
    expect(r.hitRatio).toBeGreaterThan(lru.hitRatio);
    b.clear();
    expect([b.size, b.victim(), b.state().following, b.state().switches]).toEqual([0, -1, 'predictive', 0]);
  });

  it('refuses bad options with KVMGR_INVALID_ARGUMENT', () => {
    for (const bad of [{ capacity: 0 }, { capacity: 4, exactCapacity: 0 }, { capacity: 4, experts: [] }, { capacity: 4, experts: ['lru', 'lru'] }, { capacity: 4, experts: ['belady'] }, { capacity: 4, experts: ['lru'], initialExpert: 'arc' }, { capacity: 4, margin: 2 }, { capacity: 4, sampledKeys: 0 }]) {
      expect(codeOf(() => new AdaptivePolicy(bad as never)), JSON.stringify(bad)).toBe('KVMGR_INVALID_ARGUMENT');
    }
    expect(codeOf(() => createEvictionPolicy('adaptive', {}))).toBe('KVMGR_INVALID_ARGUMENT');
  });

  it('simulates exactly up to 4,096 blocks and samples 1,024 keys above', () => {
    expect(new AdaptivePolicy({ capacity: 4096 }).state().sampleRate).toBe(1);
    expect(new AdaptivePolicy({ capacity: 100_000 }).state().sampleRate).toBeCloseTo(0.01024, 9);
    expect(new AdaptivePolicy({ capacity: 100_000, exactCapacity: 100_000 }).state().sampleRate).toBe(1);
  });

  it.each([
    // the cells the first version missed: switches that restart cold, and noise taken for a lead
    ['long-doc-qa', 1000],
    ['agentic', 3000],
  ] as const)('%s at %i blocks: >= LRU and >= 0.97 × the best fixed policy (issue #20, check 1)', (shape, c) => {
    const requests = generateBlockWorkload(shape);
    const fixed = ['lru', 'lfu', 'arc', 's3fifo', 'sieve', 'gdsf', 'predictive'].map((p) => replayBlockTrace(requests, createEvictionPolicy(p, { capacity: c }), c).hitRatio);
    const got = replayBlockTrace(requests, new AdaptivePolicy({ capacity: c }), c).hitRatio;
    expect(got).toBeGreaterThanOrEqual(fixed[0] as number);
    expect(got).toBeGreaterThanOrEqual(0.97 * Math.max(...fixed));
  });

  it('the simulations count every access so far, batched or not: exact-mode scores are the experts\' own hit counts', () => {
    // no comparison (so no decay) before the end: each score is the hit count of that expert run alone
    const experts = ['lru', 'arc', 'gdsf', 'predictive'];
    const a = new AdaptivePolicy({ capacity: 50, experts, evaluateEvery: 1_000_000 });
    const alone = experts.map((e) => createEvictionPolicy(e, { capacity: 50 }));
    const hits = experts.map(() => 0);
    let x = 12345;
    for (let n = 1; n <= 3000; n++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      const key = (x >>> 8) % 120;
      for (const p of [a, ...alone]) {
        const hit = p.has(key);
        if (hit) p.touch(key);
        else {
          while (p.size >= 50) p.remove(p.victim());
          p.insert(key);
        }
        const i = alone.indexOf(p);
        if (hit && i !== -1) hits[i] = (hits[i] as number) + 1;
      }
      if (n === 777 || n === 3000) {
        // mid-batch: state() must apply the pending accesses first
        const scores = a.state().scores;
        expect(experts.map((e) => scores[e])).toEqual(hits);
      }
    }
  });

  it('the simulations keep copies of an access\'s info: an owner reusing one info object gets the decisions of one passing fresh ones', () => {
    const requests = generateBlockWorkload('phase-shift');
    for (const options of [{ capacity: 1000 }, { capacity: 3000, exactCapacity: 1000 }]) {
      const reused = new AdaptivePolicy(options);
      const r = replayBlockTrace(requests, reused, options.capacity);
      const fresh = new AdaptivePolicy(options);
      let hitBlocks = 0;
      for (const q of requests) {
        let hit = 0;
        while (hit < q.blocks.length && fresh.has(q.blocks[hit] as number)) hit++;
        hitBlocks += hit;
        q.blocks.forEach((b, depth) => {
          const info = { nowUs: q.timestampMs * 1000, depth, promptBlocks: q.blocks.length, matchedBlocks: hit };
          if (fresh.has(b)) fresh.touch(b, info);
          else {
            while (fresh.size >= options.capacity) fresh.remove(fresh.victim());
            fresh.insert(b, info);
          }
        });
      }
      expect(hitBlocks).toBe(r.hitBlocks);
      expect(fresh.state()).toEqual(reused.state());
    }
  });

  it('a burst of hits in one long prompt is not evidence: on long-doc-qa at 1k blocks it never leaves predictive', () => {
    const a = new AdaptivePolicy({ capacity: 1000 });
    const requests = generateBlockWorkload('long-doc-qa');
    const got = replayBlockTrace(requests, a, 1000);
    expect(a.state().switches).toBe(0);
    // the cache is predictive's own copy, decision for decision
    expect(got.hitBlocks).toBe(replayBlockTrace(requests, createEvictionPolicy('predictive'), 1000).hitBlocks);
  });
});
