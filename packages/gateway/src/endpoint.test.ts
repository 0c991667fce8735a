import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type InFlight, InFlightMap } from './endpoint.js';

/** The reference: the sums walked over a plain Map, as the endpoint computed them before. */
function walked(m: ReadonlyMap<string, InFlight>, sinceMs: number): { reserved: number; count: number; tokens: number } {
  let reserved = 0;
  let count = 0;
  let tokens = 0;
  for (const f of m.values()) {
    reserved += f.tokens;
    if (f.routedAtMs >= sinceMs) {
      count++;
      tokens += f.tokens;
    }
  }
  return { reserved, count, tokens };
}

type Op =
  | { kind: 'set'; id: number; tokens: number; routedAtMs: number }
  | { kind: 'delete'; id: number }
  | { kind: 'clear' }
  | { kind: 'since'; sinceMs: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('set' as const), id: fc.nat(15), tokens: fc.nat(5000), routedAtMs: fc.nat(100) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('delete' as const), id: fc.nat(15) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('clear' as const) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('since' as const), sinceMs: fc.nat(100) }) },
);

describe('InFlightMap', () => {
  it('its running sums equal a walk over the entries after any sequence of set / delete / clear / scrape times', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
        const m = new InFlightMap();
        const ref = new Map<string, InFlight>();
        let since = 0;
        for (const o of ops) {
          if (o.kind === 'set') {
            const f = { tokens: o.tokens, routedAtMs: o.routedAtMs };
            m.set(`r${o.id}`, f);
            ref.set(`r${o.id}`, f);
          } else if (o.kind === 'delete') expect(m.delete(`r${o.id}`)).toBe(ref.delete(`r${o.id}`));
          else if (o.kind === 'clear') {
            m.clear();
            ref.clear();
          } else since = o.sinceMs;
          const want = walked(ref, since);
          const got = m.routedSince(since);
          expect({ reserved: m.reservedTokens, count: got.count, tokens: got.tokens }).toEqual(want);
          expect(m.size).toBe(ref.size);
          expect([...m.entries()]).toEqual([...ref.entries()]);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('sums kept between queries: entries set and deleted while the scrape time stays the same', () => {
    const m = new InFlightMap();
    expect(m.routedSince(10)).toEqual({ count: 0, tokens: 0 });
    m.set('a', { tokens: 100, routedAtMs: 5 });
    m.set('b', { tokens: 200, routedAtMs: 10 });
    m.set('c', { tokens: 400, routedAtMs: 11 });
    expect(m.reservedTokens).toBe(700);
    expect(m.routedSince(10)).toEqual({ count: 2, tokens: 600 });
    m.set('c', { tokens: 50, routedAtMs: 3 }); // replaced: now before the scrape
    expect(m.routedSince(10)).toEqual({ count: 1, tokens: 200 });
    expect(m.delete('b')).toBe(true);
    expect(m.delete('b')).toBe(false);
    expect(m.routedSince(10)).toEqual({ count: 0, tokens: 0 });
    expect(m.reservedTokens).toBe(150);
    expect(m.routedSince(0)).toEqual({ count: 2, tokens: 150 });
  });
});
