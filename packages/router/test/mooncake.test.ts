import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { localKeysFromBlockIds } from '../src/hash64.js';
import { KvBlockIndex } from '../src/kv-block-index.js';
import { createRouter } from '../src/router.js';
import { snap } from './helpers.js';

const TRACE = fileURLToPath(new URL('../../../../shared/traces/mooncake_fast25_conversation_trace.jsonl', import.meta.url));
/** The full trace is in ../shared beside the repository; a clone elsewhere skips its test and says why. */
const HAVE_TRACE = existsSync(TRACE);
const SKIPPED = HAVE_TRACE ? '' : ` (skipped: ${TRACE} not found; it is in the shared data beside the repository)`;
/** The bundled sample: the full trace's first 3,000 lines, unchanged. */
const SAMPLE = fileURLToPath(new URL('../../cli/data/mooncake-conversation-sample.jsonl', import.meta.url));
const BLOCK = 512; // Mooncake hash_ids are 512-token blocks

interface Row {
  timestamp: number;
  input_length: number;
  output_length: number;
  hash_ids: number[];
}

function readRows(file: string): Row[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Row);
}

/** Replays the trace: route, then the chosen instance caches every block (infinite caches). */
function replay(rows: readonly Row[], config: string): { hitTokens: number; promptTokens: number; perInstance: number[] } {
  const index = new KvBlockIndex({ maxKeys: 1 << 20, maxInstancesPerKey: 8 });
  const common = { blockSize: BLOCK, speculativeTtlMs: 0, seed: 1 } as const;
  const router = createRouter(config === 'round-robin' ? { ...common, strategy: 'round-robin' } : { ...common, scorers: config }, { index });
  const snaps = Array.from({ length: 8 }, (_, i) => snap(`pod-${i}`));
  const perInstance = new Array<number>(8).fill(0);
  let hitTokens = 0;
  let promptTokens = 0;
  rows.forEach((r, i) => {
    const d = router.route(
      { requestId: `m${i}`, arrivalUs: r.timestamp * 1000, promptTokens: r.input_length, maxTokens: r.output_length, blockKeys: r.hash_ids },
      snaps,
      r.timestamp * 1000,
    );
    hitTokens += d.cachedTokens;
    promptTokens += r.input_length;
    perInstance[d.position] = (perInstance[d.position] as number) + 1;
    index.recordBlocks(d.instanceId, localKeysFromBlockIds(r.hash_ids));
  });
  return { hitTokens, promptTokens, perInstance };
}

/** Reference: hit tokens of one infinite cache keyed by block id (ids identify the whole prefix), and prompt tokens. */
function infiniteCacheHits(rows: readonly Row[]): { refHit: number; total: number } {
  const seen = new Set<number>();
  let refHit = 0;
  let total = 0;
  for (const r of rows) {
    let m = 0;
    while (m < r.hash_ids.length && seen.has(r.hash_ids[m] as number)) m++;
    refHit += Math.min(r.input_length, m * BLOCK);
    total += r.input_length;
    for (const h of r.hash_ids) seen.add(h);
  }
  return { refHit, total };
}

describe('bundled Mooncake sample (the full trace\'s first 3,000 requests, 8 instances)', () => {
  it('prefix affinity reaches the single-infinite-cache hit rate exactly; round-robin loses hits', () => {
    const rows = readRows(SAMPLE);
    const { refHit, total } = infiniteCacheHits(rows);
    expect(rows.length).toBe(3000);
    const pa = replay(rows, 'pa:1');
    const rr = replay(rows, 'round-robin');
    expect(pa.promptTokens).toBe(total);
    expect(pa.hitTokens).toBe(refHit);
    expect(rr.hitTokens).toBeLessThan(refHit);
    expect(rr.perInstance.every((n) => Math.abs(n - 3000 / 8) <= 1)).toBe(true);
  });
});

describe.skipIf(!HAVE_TRACE)(`Mooncake conversation trace (real hash ids, 12,031 requests, 8 instances)${SKIPPED}`, () => {
  let rows: Row[] = [];
  beforeAll(() => {
    rows = readRows(TRACE);
  });

  it('prefix affinity reaches the single-infinite-cache hit rate exactly; round-robin loses hits', () => {
    const { refHit, total } = infiniteCacheHits(rows);
    expect(rows.length).toBe(12031);
    const pa = replay(rows, 'pa:1');
    const rr = replay(rows, 'round-robin');
    expect(pa.promptTokens).toBe(total);
    expect(pa.hitTokens).toBe(refHit);
    expect(refHit / total).toBeGreaterThan(0.35); // README: 37.4 %
    expect(rr.hitTokens).toBeLessThan(refHit);
    expect(rr.perInstance.every((n) => Math.abs(n - 12031 / 8) <= 1)).toBe(true);
  });
});
