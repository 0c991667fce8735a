import { isKvmgrError } from '@kvmgr/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ArcPolicy } from './arc.js';
import { BeladyPolicy } from './belady.js';
import { GdsfPolicy } from './gdsf.js';
import { LfuPolicy } from './lfu.js';
import { LruPolicy } from './lru.js';
import { PredictivePolicy } from './predictive.js';
import { EVICTION_POLICY_NAMES, createEvictionPolicy } from './registry.js';
import { S3FifoPolicy } from './s3fifo.js';
import { SievePolicy } from './sieve.js';

type Op = { op: 'insert' | 'touch' | 'remove' | 'evict'; key: number; cost: number };

/** A simple array-based model of each policy. */
interface Model {
  insert(k: number, cost: number): void;
  touch(k: number, cost: number): void;
  remove(k: number): void;
  victim(): number;
  keys(): number[];
}

const KEYS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 4294967295, 2147483648, 123456789];
const opArb = fc.record({
  op: fc.constantFrom<Op['op']>('insert', 'insert', 'touch', 'remove', 'evict'),
  key: fc.constantFrom(...KEYS),
  cost: fc.integer({ min: 1, max: 5 }),
});

class LruModel implements Model {
  q: number[] = []; // index 0 = MRU
  insert(k: number): void {
    this.remove(k);
    this.q.unshift(k);
  }
  touch(k: number): void {
    if (this.q.includes(k)) this.insert(k);
  }
  remove(k: number): void {
    this.q = this.q.filter((x) => x !== k);
  }
  victim(): number {
    return this.q.length === 0 ? -1 : (this.q[this.q.length - 1] as number);
  }
  keys(): number[] {
    return this.q;
  }
}

class LfuModel implements Model {
  m = new Map<number, { f: number; t: number }>();
  t = 0;
  insert(k: number): void {
    const e = this.m.get(k);
    if (e) this.touch(k);
    else this.m.set(k, { f: 1, t: this.t++ });
  }
  touch(k: number): void {
    const e = this.m.get(k);
    if (e) this.m.set(k, { f: e.f + 1, t: this.t++ });
  }
  remove(k: number): void {
    this.m.delete(k);
  }
  victim(): number {
    let best = -1;
    let bf = Number.POSITIVE_INFINITY;
    let bt = Number.POSITIVE_INFINITY;
    for (const [k, e] of this.m) if (e.f < bf || (e.f === bf && e.t < bt)) [best, bf, bt] = [k, e.f, e.t];
    return best;
  }
  keys(): number[] {
    return [...this.m.keys()];
  }
}

class SieveModel implements Model {
  q: number[] = []; // index 0 = head (newest)
  visited = new Set<number>();
  hand: number | null = null;
  insert(k: number): void {
    if (this.q.includes(k)) this.visited.add(k);
    else {
      this.q.unshift(k);
      this.visited.delete(k);
    }
  }
  touch(k: number): void {
    if (this.q.includes(k)) this.visited.add(k);
  }
  remove(k: number): void {
    const i = this.q.indexOf(k);
    if (i < 0) return;
    if (this.hand === k) this.hand = i === 0 ? null : (this.q[i - 1] as number);
    this.q.splice(i, 1);
    this.visited.delete(k);
  }
  victim(): number {
    if (this.q.length === 0) return -1;
    let i = this.hand === null ? this.q.length - 1 : this.q.indexOf(this.hand);
    while (this.visited.has(this.q[i] as number)) {
      this.visited.delete(this.q[i] as number);
      i = i === 0 ? this.q.length - 1 : i - 1;
    }
    this.hand = this.q[i] as number;
    return this.hand;
  }
  keys(): number[] {
    return this.q;
  }
}

class S3Model implements Model {
  s: number[] = [];
  mq: number[] = [];
  g: number[] = [];
  f = new Map<number, number>();
  constructor(
    readonly small: number,
    readonly ghost: number,
  ) {}
  insert(k: number): void {
    if (this.s.includes(k) || this.mq.includes(k)) {
      this.touch(k);
      return;
    }
    this.f.set(k, 0);
    if (this.g.includes(k)) {
      this.g = this.g.filter((x) => x !== k);
      this.mq.unshift(k);
    } else this.s.unshift(k);
  }
  touch(k: number): void {
    if (this.s.includes(k) || this.mq.includes(k)) this.f.set(k, Math.min(3, (this.f.get(k) as number) + 1));
  }
  remove(k: number): void {
    if (this.s.includes(k)) {
      this.s = this.s.filter((x) => x !== k);
      if (this.ghost > 0) {
        this.g.unshift(k);
        if (this.g.length > this.ghost) this.g.pop();
      }
    } else this.mq = this.mq.filter((x) => x !== k);
  }
  victim(): number {
    for (;;) {
      if (this.s.length + this.mq.length === 0) return -1;
      if (this.s.length > 0 && (this.s.length > this.small || this.mq.length === 0)) {
        const t = this.s[this.s.length - 1] as number;
        if ((this.f.get(t) as number) > 0) {
          this.s.pop();
          this.f.set(t, 0);
          this.mq.unshift(t);
          continue;
        }
        return t;
      }
      const t = this.mq[this.mq.length - 1] as number;
      const fr = this.f.get(t) as number;
      if (fr > 0) {
        this.f.set(t, fr - 1);
        this.mq.pop();
        this.mq.unshift(t);
        continue;
      }
      return t;
    }
  }
  keys(): number[] {
    return [...this.s, ...this.mq];
  }
}

class ArcModel implements Model {
  t1: number[] = [];
  t2: number[] = [];
  b1: number[] = [];
  b2: number[] = [];
  p = 0;
  constructor(readonly c: number) {}
  insert(k: number): void {
    if (this.t1.includes(k) || this.t2.includes(k)) {
      this.touch(k);
      return;
    }
    if (this.b1.includes(k)) {
      this.p = Math.min(this.c, this.p + Math.max(1, this.b2.length / this.b1.length));
      this.b1 = this.b1.filter((x) => x !== k);
      this.t2.unshift(k);
      return;
    }
    if (this.b2.includes(k)) {
      this.p = Math.max(0, this.p - Math.max(1, this.b1.length / this.b2.length));
      this.b2 = this.b2.filter((x) => x !== k);
      this.t2.unshift(k);
      return;
    }
    if (this.t1.length + this.b1.length >= this.c) {
      if (this.b1.length > 0) this.b1.pop();
    } else if (this.t1.length + this.t2.length + this.b1.length + this.b2.length >= 2 * this.c && this.b2.length > 0) this.b2.pop();
    this.t1.unshift(k);
  }
  touch(k: number): void {
    if (this.t1.includes(k)) {
      this.t1 = this.t1.filter((x) => x !== k);
      this.t2.unshift(k);
    } else if (this.t2.includes(k)) {
      this.t2 = [k, ...this.t2.filter((x) => x !== k)];
    }
  }
  remove(k: number): void {
    if (this.t1.includes(k)) {
      this.t1 = this.t1.filter((x) => x !== k);
      this.b1.unshift(k);
    } else if (this.t2.includes(k)) {
      this.t2 = this.t2.filter((x) => x !== k);
      this.b2.unshift(k);
    }
  }
  victim(): number {
    if (this.t1.length + this.t2.length === 0) return -1;
    const l = this.t1.length > 0 && (this.t1.length > this.p || this.t2.length === 0) ? this.t1 : this.t2;
    return l[l.length - 1] as number;
  }
  keys(): number[] {
    return [...this.t1, ...this.t2];
  }
}

class GdsfModel implements Model {
  m = new Map<number, { f: number; w: number; h: number; seq: number }>();
  l = 0;
  seq = 0;
  insert(k: number, cost: number): void {
    if (this.m.has(k)) {
      this.touch(k, cost);
      return;
    }
    this.m.set(k, { f: 1, w: cost, h: this.l + cost, seq: this.seq++ });
  }
  touch(k: number, cost: number): void {
    const e = this.m.get(k);
    if (e) this.m.set(k, { f: e.f + 1, w: cost, h: this.l + (e.f + 1) * cost, seq: this.seq++ });
  }
  remove(k: number): void {
    const e = this.m.get(k);
    if (!e) return;
    if (this.victim() === k) this.l = e.h;
    this.m.delete(k);
  }
  victim(): number {
    let best = -1;
    let bh = Number.POSITIVE_INFINITY;
    let bs = Number.POSITIVE_INFINITY;
    for (const [k, e] of this.m) if (e.h < bh || (e.h === bh && e.seq < bs)) [best, bh, bs] = [k, e.h, e.seq];
    return best;
  }
  keys(): number[] {
    return [...this.m.keys()];
  }
}

function runAgainst(
  make: () => { p: import('@kvmgr/core').EvictionPolicy; m: Model; cap?: number },
  ops: Op[],
  after?: (p: import('@kvmgr/core').EvictionPolicy) => void,
): void {
  const { p, m, cap } = make();
  for (const o of ops) {
    if (o.op === 'insert') {
      if (cap !== undefined && !p.has(o.key)) {
        while (p.size >= cap) {
          const v = p.victim();
          expect(v).toBe(m.victim());
          p.remove(v);
          m.remove(v);
        }
      }
      p.insert(o.key, { cost: o.cost });
      m.insert(o.key, o.cost);
    } else if (o.op === 'touch') {
      p.touch(o.key, { cost: o.cost });
      m.touch(o.key, o.cost);
    } else if (o.op === 'remove') {
      p.remove(o.key);
      m.remove(o.key);
    } else {
      const v = p.victim();
      expect(v).toBe(m.victim());
      if (v !== -1) {
        p.remove(v);
        m.remove(v);
      }
    }
    const keys = m.keys();
    expect(p.size).toBe(keys.length);
    for (const k of KEYS) expect(p.has(k)).toBe(keys.includes(k));
    expect(p.victim()).toBe(m.victim());
    after?.(p);
  }
}

const ops = fc.array(opArb, { maxLength: 120 });

describe('node-level policies match their reference models', () => {
  it('LRU', () => fc.assert(fc.property(ops, (o) => runAgainst(() => ({ p: new LruPolicy({ initialCapacity: 1 }), m: new LruModel() }), o))));
  it('LFU (frequency, then least recent)', () =>
    fc.assert(fc.property(ops, (o) => runAgainst(() => ({ p: new LfuPolicy({ initialCapacity: 1 }), m: new LfuModel() }), o))));
  it('SIEVE', () => fc.assert(fc.property(ops, (o) => runAgainst(() => ({ p: new SievePolicy({ initialCapacity: 1 }), m: new SieveModel() }), o))));
  it('S3-FIFO', () =>
    fc.assert(
      fc.property(ops, fc.integer({ min: 1, max: 12 }), (o, c) =>
        runAgainst(() => ({ p: new S3FifoPolicy({ capacity: c, initialCapacity: 1 }), m: new S3Model(Math.max(1, Math.floor(c * 0.1)), Math.floor(c * 0.9)), cap: c }), o),
      ),
    ));
  it('GDSF (cost-aware, inflation clock)', () =>
    fc.assert(fc.property(ops, (o) => runAgainst(() => ({ p: new GdsfPolicy({ initialCapacity: 1 }), m: new GdsfModel() }), o))));
  it('ARC, with its invariants on random sequences', () =>
    fc.assert(
      fc.property(ops, fc.integer({ min: 1, max: 10 }), (o, c) =>
        runAgainst(
          () => ({ p: new ArcPolicy({ capacity: c, initialCapacity: 1 }), m: new ArcModel(c), cap: c }),
          o,
          (p) => {
            const arc = p as ArcPolicy;
            const { t1, t2, b1, b2 } = arc.listSizes();
            expect(t1 + t2).toBeLessThanOrEqual(c);
            expect(t1 + b1).toBeLessThanOrEqual(c);
            expect(t1 + t2 + b1 + b2).toBeLessThanOrEqual(2 * c);
            expect(arc.p).toBeGreaterThanOrEqual(0);
            expect(arc.p).toBeLessThanOrEqual(c);
          },
        ),
      ),
    ));

  it('Belady evicts the key used farthest in the future, and no policy beats its hits', () =>
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 9 }), { maxLength: 150 }), fc.integer({ min: 1, max: 6 }), (seq, c) => {
        const b = new BeladyPolicy({ accesses: seq });
        const run = (p: import('@kvmgr/core').EvictionPolicy): number => {
          let hits = 0;
          seq.forEach((k, i) => {
            if (p.has(k)) {
              hits++;
              p.touch(k);
              return;
            }
            while (p.size >= c) {
              const v = p.victim();
              if (p === b) {
                // reference: the resident key whose next use after i is farthest (never = ∞; ties: larger key)
                const next = (key: number): number => {
                  const j = seq.indexOf(key, i);
                  return j < 0 ? Number.POSITIVE_INFINITY : j;
                };
                let best = -1;
                let bn = -1;
                for (let key = 0; key <= 9; key++) {
                  if (!p.has(key)) continue;
                  const nx = next(key);
                  if (nx > bn || (nx === bn && key > best)) [best, bn] = [key, nx];
                }
                expect(v).toBe(best);
              }
              p.remove(v);
            }
            p.insert(k);
          });
          return hits;
        };
        const opt = run(b);
        expect(opt).toBeGreaterThanOrEqual(run(new LruPolicy()));
        expect(opt).toBeGreaterThanOrEqual(run(new LfuPolicy()));
        expect(opt).toBeGreaterThanOrEqual(run(new SievePolicy()));
      }),
    ));

  it('predictive keeps a consistent resident set (ghosts are not resident)', () =>
    fc.assert(
      fc.property(ops, fc.integer({ min: 1, max: 12 }), (o, c) => {
        const p = new PredictivePolicy({ historySize: 4, refreshEvery: 3, initialCapacity: 1 });
        const model = new Set<number>();
        for (const x of o) {
          if (x.op === 'insert') {
            if (!p.has(x.key)) {
              while (p.size >= c) {
                const v = p.victim();
                expect(model.has(v)).toBe(true);
                p.remove(v);
                model.delete(v);
              }
            }
            p.insert(x.key, { depth: x.cost - 1, promptBlocks: 5, matchedBlocks: x.cost % 3 });
            model.add(x.key);
          } else if (x.op === 'touch') p.touch(x.key, { reuseProbability: x.cost / 5 });
          else if (x.op === 'remove') {
            p.remove(x.key);
            model.delete(x.key);
          } else {
            const v = p.victim();
            expect(v === -1 ? model.size === 0 : model.has(v)).toBe(true);
            if (v !== -1) {
              p.remove(v);
              model.delete(v);
            }
          }
          expect(p.size).toBe(model.size);
          for (const k of KEYS) expect(p.has(k)).toBe(model.has(k));
        }
      }),
    ));
});

describe('predictive with an external signal', () => {
  const infoArb = fc.record({ depth: fc.integer({ min: 0, max: 4 }), promptBlocks: fc.constant(5), matchedBlocks: fc.integer({ min: 0, max: 4 }) });
  const seqArb = fc.array(fc.record({ op: fc.constantFrom('access', 'access', 'access', 'evict'), key: fc.constantFrom(...KEYS), info: infoArb }), { maxLength: 120 });

  /** Replays `seq` (accesses evict down to capacity 6 first) and returns every victim taken. */
  const victims = (p: PredictivePolicy, seq: { op: string; key: number; info: { depth: number; promptBlocks: number; matchedBlocks: number } }[]): number[] => {
    const out: number[] = [];
    for (const x of seq) {
      if (x.op === 'evict' || (!p.has(x.key) && p.size >= 6)) {
        const v = p.victim();
        out.push(v);
        if (v !== -1) p.remove(v);
      }
      if (x.op === 'access') p.insert(x.key, x.info);
    }
    return out;
  };

  it("signal 'combine' without a signal evicts exactly as the built-in classes do", () =>
    fc.assert(
      fc.property(seqArb, (seq) => {
        const opts = { historySize: 5, refreshEvery: 4, initialCapacity: 1 };
        const plain = victims(new PredictivePolicy(opts), seq);
        expect(victims(new PredictivePolicy({ ...opts, signal: 'combine', predictReuse: () => undefined }), seq)).toEqual(plain);
        expect(victims(new PredictivePolicy({ ...opts, predictReuse: () => undefined }), seq)).toEqual(plain);
      }),
    ));

  it("signal 'combine' learns that keys flagged 1 come back and keys flagged 0 do not", () => {
    // keys 1000.. (flagged 1) are each touched once, 64 steps after insertion; keys 5000..
    // (flagged 0) never come back. A short history lets the policy learn the "never" too.
    const train = (p: PredictivePolicy): number => {
      for (let i = 0; i < 2000; i++) {
        p.insert(1000 + i);
        p.insert(5000 + i);
        if (i >= 64) p.touch(1000 + i - 64);
        while (p.size > 256) p.remove(p.victim());
      }
      p.clear(); // residents and history go, the learned statistics stay
      p.insert(3999); // older
      p.insert(9999);
      return p.victim();
    };
    const opts = { refreshEvery: 8, historySize: 64 };
    expect(train(new PredictivePolicy({ ...opts, signal: 'combine', predictReuse: (key) => (key < 5000 ? 1 : 0) }))).toBe(9999);
    // without the signal both fresh keys share a class and the older one goes first
    expect(train(new PredictivePolicy(opts))).toBe(3999);
  });

  it('a predictReuse outside [0, 1] is rejected and the key is not tracked', () => {
    const p = new PredictivePolicy({ signal: 'combine', predictReuse: () => 1.5 });
    expect(() => p.insert(1)).toThrow(/reuseProbability/);
    expect(p.has(1)).toBe(false);
    expect(p.size).toBe(0);
  });
});

describe('bad input and failed operations', () => {
  const expectCode = (fn: () => unknown, code: string): void => {
    try {
      fn();
    } catch (e) {
      expect(isKvmgrError(e, code)).toBe(true);
      return;
    }
    throw new Error('expected a throw');
  };

  it.each(EVICTION_POLICY_NAMES.filter((n) => n !== 'belady'))('%s rejects keys outside u32 and stays unchanged', (name) => {
    const p = createEvictionPolicy(name, { capacity: 4 });
    p.insert(7);
    for (const bad of [-1, 1.5, Number.NaN, 2 ** 32]) expectCode(() => p.insert(bad), 'KVMGR_INVALID_ARGUMENT');
    expect(p.size).toBe(1);
    expect(p.victim()).toBe(7);
  });

  it('ARC refuses an insert beyond capacity and leaves p and the lists unchanged', () => {
    const a = new ArcPolicy({ capacity: 2 });
    a.insert(1);
    a.insert(2);
    const before = a.listSizes();
    expectCode(() => a.insert(3), 'KVMGR_INVALID_STATE');
    expect(a.listSizes()).toEqual(before);
    expect(a.has(3)).toBe(false);
  });

  it('GDSF rejects a negative cost without changing priorities', () => {
    const g = new GdsfPolicy();
    g.insert(1, { cost: 2 });
    expectCode(() => g.touch(1, { cost: -1 }), 'KVMGR_INVALID_ARGUMENT');
    expect(g.priorityOf(1)).toBe(2);
    expectCode(() => g.insert(2, { size: 0 }), 'KVMGR_INVALID_ARGUMENT');
    expect(g.has(2)).toBe(false);
  });

  it('Belady rejects an access that is not the next one of its sequence', () => {
    const b = new BeladyPolicy({ accesses: [1, 2, 1] });
    b.insert(1);
    expectCode(() => b.insert(3), 'KVMGR_INVALID_STATE');
    expect(b.position).toBe(1);
    b.insert(2);
    expect(b.victim()).toBe(2);
  });

  it('registry rejects unknown names and missing options', () => {
    expectCode(() => createEvictionPolicy('fifo'), 'KVMGR_INVALID_ARGUMENT');
    expectCode(() => createEvictionPolicy('arc'), 'KVMGR_INVALID_ARGUMENT');
    expectCode(() => createEvictionPolicy('belady'), 'KVMGR_INVALID_ARGUMENT');
    expectCode(() => new PredictivePolicy().insert(1, { reuseProbability: 2 }), 'KVMGR_INVALID_ARGUMENT');
    expectCode(() => new PredictivePolicy({ signal: 'mix' as 'combine' }), 'KVMGR_INVALID_ARGUMENT');
    for (const n of EVICTION_POLICY_NAMES) expect(createEvictionPolicy(n, { capacity: 3, accesses: [] }).name).toBe(n);
  });
});

describe('growth of the key map', () => {
  it('tracks 20k u32 keys through growth and deletions', () => {
    const p = new LruPolicy({ initialCapacity: 8 });
    const keys: number[] = [];
    let x = 12345;
    for (let i = 0; i < 20000; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      keys.push(x);
    }
    const uniq = [...new Set(keys)];
    for (const k of uniq) p.insert(k);
    expect(p.size).toBe(uniq.length);
    for (let i = 0; i < uniq.length; i += 2) p.remove(uniq[i] as number);
    for (let i = 0; i < uniq.length; i++) expect(p.has(uniq[i] as number)).toBe(i % 2 === 1);
    expect(p.victim()).toBe(uniq[1]);
    p.clear();
    expect(p.size).toBe(0);
    expect(p.victim()).toBe(-1);
  });
});
