/**
 * Check 2: replays the Mooncake conversation trace through RadixPrefixCache (pageSize 1 over
 * hash_ids) with unlimited capacity and with LRU at 3,000 blocks of 512 tokens.
 * Run from the repo root:
 *   node --conditions=@kvmgr/source --import tsx packages/prefix-cache/scripts/mooncake-hit-ratio.ts
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseMooncakeRows } from '@kvmgr/core';
import { type MooncakeRecord, replayMooncakePrefixHits } from '../src/mooncake-replay.js';

const here = dirname(fileURLToPath(import.meta.url));
const path = resolve(here, '../../../../shared/traces/mooncake_fast25_conversation_trace.jsonl');
const records = parseMooncakeRows(readFileSync(path, 'utf8'), path).rows.map(
  (r): MooncakeRecord => ({ timestamp: r.timestampMs, input_length: r.inputLength, hash_ids: r.hashIds }),
);
for (const capacityBlocks of [Number.POSITIVE_INFINITY, 3000]) {
  const t0 = performance.now();
  const r = replayMooncakePrefixHits(records, { capacityBlocks });
  const ms = performance.now() - t0;
  console.log(
    `capacity=${capacityBlocks === Number.POSITIVE_INFINITY ? 'unlimited' : `${capacityBlocks} blocks`} requests=${r.requests} ` +
      `tokenHitRatio=${r.tokenHitRatio.toFixed(4)} blockHitRatio=${r.blockHitRatio.toFixed(4)} evictedBlocks=${r.evictedBlocks} (${ms.toFixed(0)} ms)`,
  );
}
