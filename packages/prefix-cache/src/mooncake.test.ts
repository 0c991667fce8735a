import { existsSync, readFileSync } from 'node:fs';
import { isKvmgrError } from '@kvmgr/core';
import { beforeAll, describe, expect, it } from 'vitest';
import { type MooncakeRecord, replayMooncakePrefixHits } from './mooncake-replay.js';
import { mooncakeEngineBlockKeys } from './mooncake.js';

const TRACE = new URL('../../../../shared/traces/mooncake_fast25_conversation_trace.jsonl', import.meta.url);
/** The full trace is in ../shared beside the repository; a clone elsewhere skips its tests and says why. */
const HAVE_TRACE = existsSync(TRACE);
const SKIPPED = HAVE_TRACE ? '' : ` (skipped: ${TRACE.pathname} not found; it is in the shared data beside the repository)`;
/** The bundled sample: the full trace's first 3,000 lines, unchanged. */
const SAMPLE = new URL('../../cli/data/mooncake-conversation-sample.jsonl', import.meta.url);

function readRecords(file: URL): MooncakeRecord[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as MooncakeRecord);
}

/** Block hit ratio of an independent block-level LRU model (Map insertion order = recency), evicting until the prompt fits. */
function blockLruHitRatio(records: readonly MooncakeRecord[], capacity: number): number {
  const lru = new Map<number, true>();
  let hit = 0;
  let total = 0;
  const sorted = records.map((x, i) => [x, i] as const).sort((a, b) => a[0].timestamp - b[0].timestamp || a[1] - b[1]);
  for (const [rec] of sorted) {
    let k = 0;
    while (k < rec.hash_ids.length && lru.has(rec.hash_ids[k] as number)) k++;
    hit += k;
    total += rec.hash_ids.length;
    for (const h of rec.hash_ids) lru.delete(h);
    // the prompt's blocks are the most recent; evict the oldest others until it fits
    while (lru.size + rec.hash_ids.length > capacity) lru.delete(lru.keys().next().value as number);
    for (const h of rec.hash_ids) lru.set(h, true);
  }
  return hit / total;
}

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return isKvmgrError(e) ? e.code : 'not-kvmgr';
  }
  return undefined;
}

describe('mooncakeEngineBlockKeys', () => {
  it('maps hash id h, sub-block j to h * 32 + j, the last block partial by input_length', () => {
    const r = mooncakeEngineBlockKeys([0, 5], 512 + 40);
    expect(Array.from(r.keys)).toEqual([...Array.from({ length: 32 }, (_, j) => j), 160, 161, 162]);
    expect(r.lastBlockTokens).toBe(8);
    expect(r.fullBlocks).toBe(34);
    const full = mooncakeEngineBlockKeys([3], 512);
    expect(full.keys.length).toBe(32);
    expect(full.lastBlockTokens).toBe(16);
    expect(full.fullBlocks).toBe(32);
    expect(Array.from(mooncakeEngineBlockKeys([1], 100, { engineBlockSize: 64 }).keys)).toEqual([8, 9]);
  });

  it('is collision free across hash ids and sub-blocks', () => {
    const seen = new Set<number>();
    for (let h = 0; h < 200; h++) for (const k of mooncakeEngineBlockKeys([h], 512).keys) seen.add(k);
    expect(seen.size).toBe(200 * 32);
    const max = Math.floor((0xffffffff - 31) / 32);
    expect(mooncakeEngineBlockKeys([max], 512).keys[31]).toBe(max * 32 + 31);
  });

  it('rejects overflow, bad block sizes and inconsistent lengths', () => {
    expect(code(() => mooncakeEngineBlockKeys([2 ** 27], 512))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(code(() => mooncakeEngineBlockKeys([1], 512, { engineBlockSize: 24 }))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(code(() => mooncakeEngineBlockKeys([1, 2], 512))).toBe('KVMGR_BAD_TRACE');
    expect(code(() => mooncakeEngineBlockKeys([1], 513))).toBe('KVMGR_BAD_TRACE');
    expect(code(() => mooncakeEngineBlockKeys([-1], 10))).toBe('KVMGR_BAD_TRACE');
  });
});

describe('bundled Mooncake sample replay (the full trace\'s first 3,000 requests)', () => {
  const records = readRecords(SAMPLE);

  it('unlimited capacity evicts nothing; LRU with 3,000 blocks equals a block-level LRU model', () => {
    const r = replayMooncakePrefixHits(records);
    expect(r.requests).toBe(3000);
    expect(r.evictedBlocks).toBe(0);
    expect(r.tokenHitRatio).toBeGreaterThan(0);
    const lru = replayMooncakePrefixHits(records, { capacityBlocks: 3000 });
    expect(lru.blockHitRatio).toBeCloseTo(blockLruHitRatio(records, 3000), 3);
  });
});

describe.skipIf(!HAVE_TRACE)(`Mooncake conversation trace replay (check 2)${SKIPPED}`, () => {
  let records: MooncakeRecord[] = [];
  beforeAll(() => {
    records = readRecords(TRACE);
  });

  it('unlimited capacity: token hit ratio 0.374 ± 0.003', () => {
    const r = replayMooncakePrefixHits(records);
    expect(r.requests).toBe(12031);
    expect(r.evictedBlocks).toBe(0);
    expect(Math.abs(r.tokenHitRatio - 0.374)).toBeLessThanOrEqual(0.003);
  });

  it('LRU with 3,000 blocks: block hit ratio 0.065 ± 0.005, equal to a block-level LRU model', () => {
    const r = replayMooncakePrefixHits(records, { capacityBlocks: 3000 });
    expect(Math.abs(r.blockHitRatio - 0.065)).toBeLessThanOrEqual(0.005);
    expect(r.blockHitRatio).toBeCloseTo(blockLruHitRatio(records, 3000), 3);
  });
});
