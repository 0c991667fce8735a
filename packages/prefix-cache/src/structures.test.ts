import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ChildTable } from './child-table.js';
import { LruPolicy } from './lru-policy.js';

describe('LruPolicy', () => {
  it('agrees with an array model under random operations', () => {
    const op = fc.record({ t: fc.integer({ min: 0, max: 4 }), key: fc.integer({ min: 0, max: 40 }), ref: fc.integer({ min: 0, max: 40 }) });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
        const lru = new LruPolicy(1);
        let model: number[] = []; // least recent first
        for (const o of ops) {
          if (o.t === 0) {
            lru.insert(o.key);
            model = model.filter((k) => k !== o.key);
            model.push(o.key);
          } else if (o.t === 1) {
            lru.touch(o.key);
            if (model.includes(o.key)) {
              model = model.filter((k) => k !== o.key);
              model.push(o.key);
            }
          } else if (o.t === 2) {
            lru.remove(o.key);
            model = model.filter((k) => k !== o.key);
          } else if (o.t === 3) {
            lru.insertAfter(o.key, o.ref);
            if (!model.includes(o.ref) || o.key === o.ref) {
              model = model.filter((k) => k !== o.key);
              model.push(o.key);
            } else {
              model = model.filter((k) => k !== o.key);
              model.splice(model.indexOf(o.ref) + 1, 0, o.key);
            }
          } else {
            const v = lru.victim();
            expect(v).toBe(model.length ? model[0] : -1);
            if (v >= 0) {
              lru.remove(v);
              model.shift();
            }
          }
          expect(lru.size).toBe(model.length);
          expect(lru.has(o.key)).toBe(model.includes(o.key));
        }
        const order: number[] = [];
        for (let v = lru.victim(); v >= 0; v = lru.victim()) {
          order.push(v);
          lru.remove(v);
        }
        expect(order).toEqual(model);
      }),
      { numRuns: 300, seed: 1 },
    );
  });
});

describe('ChildTable', () => {
  it('agrees with a multimap, duplicate (parent, key) entries included', () => {
    const op = fc.record({ add: fc.boolean(), parent: fc.integer({ min: 0, max: 3 }), key: fc.integer({ min: 0, max: 5 }), child: fc.integer({ min: 0, max: 30 }) });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
        const t = new ChildTable(1);
        const m = new Map<string, number[]>();
        for (const o of ops) {
          const k = `${o.parent}:${o.key}`;
          const list = m.get(k) ?? [];
          if (o.add) {
            if (list.includes(o.child)) continue;
            t.add(o.parent, o.key, o.child);
            m.set(k, [...list, o.child]);
          } else {
            const s = t.slotOfChild(o.parent, o.key, o.child);
            expect(s >= 0).toBe(list.includes(o.child));
            if (s >= 0) {
              t.removeSlot(s);
              m.set(
                k,
                list.filter((c) => c !== o.child),
              );
            }
          }
        }
        let total = 0;
        for (const [k, list] of m) {
          const [p, key] = k.split(':').map(Number) as [number, number];
          const found: number[] = [];
          for (let s = t.findSlot(p, key, -1); s >= 0; s = t.findSlot(p, key, s + 1)) found.push(t.childAt(s));
          expect(found.sort()).toEqual([...list].sort());
          total += list.length;
        }
        expect(t.size).toBe(total);
      }),
      { numRuns: 200, seed: 3 },
    );
  });
});
