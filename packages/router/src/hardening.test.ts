/**
 * Issue #19: the index counts and drops malformed events whole (never throws, never half-applies),
 * validates ranges and expiry of direct calls, and the config parsers only ever return a valid
 * config or throw KVMGR_BAD_CONFIG (fuzzed).
 */
import { type KvEvent, isKvmgrError } from '@kvmgr/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseRouterConfig, parseScorerWeights, resolveRouterConfig } from './config.js';
import { localKeysFromTokens } from './hash64.js';
import { KvBlockIndex, createPrefixMatch } from './kv-block-index.js';

const RUNS = Number(process.env.KVMGR_FUZZ_RUNS ?? 3000);

/**
 * CPU time of this process, ms: the bound below is on a case's own work, which a loaded machine's
 * scheduling does not stretch (on wall time, a process descheduled for a second would fail it).
 */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    if (!isKvmgrError(e)) throw e;
    return e.code;
  }
}

function snapshot(index: KvBlockIndex): unknown {
  const keys = index.keys().sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  return { keys, holders: keys.map(([hi, lo]) => index.holders(hi, lo)) };
}

const stored = (over: Record<string, unknown>): KvEvent => ({ type: 'BlockStored', blockHashes: [1n, 2n], parentBlockHash: null, tokenIds: [1, 2, 3, 4], blockSize: 2, ...over }) as never;

const MALFORMED: [string, unknown][] = [
  ['null', null],
  ['undefined', undefined],
  ['a number', 7],
  ['no type', {}],
  ['unknown type', { type: 'BlockMoved' }],
  ['type __proto__', { type: '__proto__' }],
  ['BlockStored with no fields', { type: 'BlockStored' }],
  ['BlockRemoved with no fields', { type: 'BlockRemoved' }],
  ['blockHashes not an array', stored({ blockHashes: 5n })],
  ['blockHashes with a number', stored({ blockHashes: [5n, 6] })],
  ['blockHashes with null', stored({ blockHashes: [5n, null] })],
  ['parentBlockHash a number', stored({ parentBlockHash: 3 })],
  ['medium 7', stored({ medium: 7 })],
  ['medium unknown', stored({ medium: 'TAPE' })],
  ['tokenIds a string', stored({ tokenIds: 'abcd' })],
  ['tokenIds with a float', stored({ tokenIds: [1, 2, 3, 4.5] })],
  ['tokenIds with -1', stored({ tokenIds: [1, 2, 3, -1] })],
  ['tokenIds too short', stored({ tokenIds: [1, 2, 3] })],
  ['blockSize 2.5', stored({ blockSize: 2.5, tokenIds: [1, 2, 3, 4, 5] })],
  ['blockSize 0', stored({ blockSize: 0, tokenIds: [] })],
  ['blockSize NaN', stored({ blockSize: Number.NaN })],
  ['loraName a number', stored({ loraName: 5 })],
  ['loraId a string', stored({ loraId: 'x' })],
  ['extraKeys not an array', stored({ extraKeys: 'x' })],
  ['BlockRemoved medium 7', { type: 'BlockRemoved', blockHashes: [1n], medium: 7 }],
  ['BlockRemoved hashes with a string', { type: 'BlockRemoved', blockHashes: [1n, 'x'] }],
  ['AllBlocksCleared medium 7', { type: 'AllBlocksCleared', medium: 7 }],
];

describe.each(['hash-tokens', 'identity'] as const)('KvBlockIndex hardening (#19), %s keys', (engineKeys) => {
  it('D4: malformed events are counted and dropped whole; nothing throws, nothing is half-applied', () => {
    const index = new KvBlockIndex({ engineKeys, maxKeys: 64 });
    index.addInstance('a');
    index.applyEvent('a', stored({}));
    const before = snapshot(index);
    let applied = index.stats.eventsApplied;
    let malformed = index.stats.malformedEvents;
    for (const [what, ev] of MALFORMED) {
      // identity mode reads neither tokenIds nor blockSize: those are not malformed there
      const ignored = engineKeys === 'identity' && /^(tokenIds|blockSize)/.test(what);
      expect(() => index.applyEvent('a', ev as KvEvent), what).not.toThrow();
      if (!ignored) {
        malformed++;
        expect(index.stats.malformedEvents, what).toBe(malformed);
        expect(snapshot(index), what).toEqual(before);
        expect(index.stats.eventsApplied, what).toBe(applied);
      } else {
        // applied: it stores the same two hashes again
        expect(snapshot(index), what).toEqual(before);
        expect(index.stats.malformedEvents, what).toBe(malformed);
        applied = index.stats.eventsApplied;
      }
    }
    expect(() => index.applyEvents('a', null as never)).not.toThrow();
    // unknown extra fields (a newer core) are ignored
    index.applyEvent('a', stored({ blockHashes: [7n], parentBlockHash: 2n, tokenIds: [5, 6], kvCacheSpecKind: 'full_attention' }));
    expect(index.stats.malformedEvents).toBe(malformed + 1);
  });
});

describe('KvBlockIndex ranges and expiry (#19)', () => {
  const keys = localKeysFromTokens([1, 2, 3, 4, 5, 6, 7, 8], 4); // 2 blocks

  it('D5: recordBlocks/removeBlocks/addSpeculative refuse ranges outside the keys, with nothing stored', () => {
    const index = new KvBlockIndex({ maxKeys: 4 });
    index.recordBlocks('a', keys, 'gpu');
    const before = snapshot(index);
    const table: [string, () => unknown][] = [
      ['record 0..8 of 2 blocks', () => index.recordBlocks('a', keys, 'gpu', 0, 8)],
      ['record from -1', () => index.recordBlocks('a', keys, 'gpu', -1, 2)],
      ['record from 0.5', () => index.recordBlocks('a', keys, 'gpu', 0.5, 2)],
      ['record to NaN', () => index.recordBlocks('a', keys, 'gpu', 0, Number.NaN)],
      ['record from > to', () => index.recordBlocks('a', keys, 'gpu', 2, 1)],
      ['record keys null', () => index.recordBlocks('a', null as never, 'gpu')],
      ['record tier bad', () => index.recordBlocks('a', keys, 'tape' as never)],
      ['remove 0..8', () => index.removeBlocks('a', keys, 'gpu', 0, 8)],
      ['speculative 0..8', () => index.addSpeculative('a', keys, 0, 8, 100)],
      ['speculative expiry NaN', () => index.addSpeculative('a', keys, 0, 2, Number.NaN)],
      ['speculative expiry Infinity', () => index.addSpeculative('a', keys, 0, 2, Number.POSITIVE_INFINITY)],
      ['speculative from -1', () => index.addSpeculative('a', keys, -1, 2, 100)],
    ];
    for (const [what, fn] of table) {
      expect(codeOf(fn), what).toBe('KVMGR_INVALID_ARGUMENT');
      expect(snapshot(index), what).toEqual(before);
    }
    expect(index.instances()).toEqual(['a']);
    expect(codeOf(() => index.addSpeculative('b', keys, 0, 8, 100))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(index.instances()).toEqual(['a']);
  });

  it('D5: matchPrefix refuses an `out` smaller than maxInstances and a block count beyond the keys', () => {
    const index = new KvBlockIndex({ maxKeys: 4, maxInstances: 4 });
    index.recordBlocks('a', keys, 'gpu');
    expect(codeOf(() => index.matchPrefix(keys, 2, 0, createPrefixMatch(2)))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(codeOf(() => index.matchPrefix(keys, 3, 0, createPrefixMatch(4)))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(codeOf(() => index.matchPrefix(keys, -1, 0, createPrefixMatch(4)))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(codeOf(() => index.matchPrefix(keys, 2, Number.NaN, createPrefixMatch(4)))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(codeOf(() => index.matchPrefix(keys, 2, 0, null as never))).toBe('KVMGR_INVALID_ARGUMENT');
    const out = createPrefixMatch(4);
    index.matchPrefix(keys, 2, 0, out);
    expect(out.matchedBlocks[0]).toBe(2);
  });
});

describe('router config hardening (#19)', () => {
  it('D6: Object.prototype names are unknown presets / scorers, not the default config', () => {
    for (const t of ['__proto__', 'toString', 'constructor', 'hasOwnProperty', 'valueOf']) {
      expect(codeOf(() => parseRouterConfig(t)), t).toBe('KVMGR_BAD_CONFIG');
      expect(codeOf(() => parseRouterConfig(`${t}:1`)), t).toBe('KVMGR_BAD_CONFIG');
      expect(codeOf(() => parseScorerWeights(`pa:1,${t}:2`)), t).toBe('KVMGR_BAD_CONFIG');
      expect(codeOf(() => resolveRouterConfig({ scorers: [{ name: t, weight: 1 }] })), t).toBe('KVMGR_BAD_CONFIG');
      expect(codeOf(() => parseRouterConfig(`{ scorers: { ${t}: 1 } }`)), t).toBe('KVMGR_BAD_CONFIG');
    }
    expect(codeOf(() => resolveRouterConfig(null as never))).toBe('KVMGR_BAD_CONFIG');
  });

  it('YAML warnings are errors, not stderr noise', () => {
    expect(codeOf(() => parseRouterConfig('{ picker: !custom max }'))).toBe('KVMGR_BAD_CONFIG');
  });

  it(`fuzz: ${RUNS} mutated router configs and weight strings resolve or throw KVMGR_BAD_CONFIG, quickly`, () => {
    const seeds = ['kvmgr-default', 'llm-d-default', 'round-robin', 'pa:3,qd:2,kv:2', 'pa:1', '{ strategy: scored, scorers: "pa:3,qd:2", picker: top-k, topK: 2 }', 'strategy: scored\nscorers:\n  pa: 3\n  qd: 2\npd:\n  buffer: 0.9\n', '{ scorers: [ { name: load-aware, weight: 1, params: { threshold: 8 } } ], tierWeights: { cpu: 0.5 } }'];
    const pieces = [':', ',', '{', '}', '[', ']', '\n', ' ', '-1', '1e999', 'NaN', '__proto__', 'constructor', 'toString', '&a', '*a', '!!js/function', 'pa', 'qd', 'kv', ': ', '"'];
    const mutated = fc
      .tuple(fc.constantFrom(...seeds), fc.array(fc.tuple(fc.nat(), fc.nat(4), fc.oneof(fc.constantFrom(...pieces), fc.string({ maxLength: 4 }))), { maxLength: 4 }))
      .map(([s, edits]) => {
        let t = s;
        for (const [at, del, ins] of edits) {
          const i = at % (t.length + 1);
          t = t.slice(0, i) + ins + t.slice(i + del);
        }
        return t;
      });
    fc.assert(
      fc.property(fc.oneof(mutated, fc.string({ maxLength: 30 })), (text) => {
        const t0 = cpuMs();
        for (const parse of [parseRouterConfig, parseScorerWeights] as ((t: string) => unknown)[]) {
          try {
            const c = parse(text) as { scorers?: unknown };
            expect(c).toBeTypeOf('object');
            if (parse === parseRouterConfig) {
              const r = c as ReturnType<typeof parseRouterConfig>;
              for (const s of r.scorers) expect(Number.isFinite(s.weight) && s.weight >= 0).toBe(true);
              expect(Number.isInteger(r.topK) && r.topK >= 1).toBe(true);
            }
          } catch (e) {
            if (!isKvmgrError(e, 'KVMGR_BAD_CONFIG')) throw e;
          }
        }
        expect(cpuMs() - t0).toBeLessThan(1000);
      }),
      { numRuns: RUNS, seed: 19 },
    );
  });
});
