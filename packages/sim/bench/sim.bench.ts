import { join } from 'node:path';
import type { BenchSuite } from '../../../bench/types.js';
import { KeyTable } from '../src/engine/key-table.js';
import { loadMooncakeTrace, runReplay } from '../src/index.js';

/**
 * Simulator benchmarks: the prefix-key table against a `Map` (the replay's hottest structure),
 * and whole replays of a Mooncake slice (one op = one replay of 100 requests on 4 instances).
 */
export function createSuite(): BenchSuite {
  const N = 4096;
  const keys = Float64Array.from({ length: N }, (_, i) => i * 32 + (i % 7));
  const table = new KeyTable(N);
  const map = new Map<number, number>();
  let sink = 0;
  const trace = loadMooncakeTrace(join(import.meta.dirname, '../../../../shared/traces/mooncake_fast25_conversation_trace.jsonl'), { limit: 100 });
  const t0 = performance.now();
  const probe = runReplay({ trace, profile: 'vllm-default' });
  const probeMs = performance.now() - t0;
  return {
    name: 'sim',
    cases: [
      {
        name: 'Map set+get+delete 4k keys (peer)',
        fn: () => {
          for (let i = 0; i < N; i++) map.set(keys[i] as number, i);
          for (let i = 0; i < N; i++) sink += map.get(keys[i] as number) as number;
          for (let i = 0; i < N; i++) map.delete(keys[i] as number);
        },
      },
      {
        name: 'KeyTable set+get+delete 4k keys',
        baseline: 'Map set+get+delete 4k keys (peer)',
        fn: () => {
          for (let i = 0; i < N; i++) table.set(keys[i] as number, i);
          for (let i = 0; i < N; i++) sink += table.get(keys[i] as number);
          for (let i = 0; i < N; i++) table.delete(keys[i] as number);
        },
      },
      { name: 'replay 100 Mooncake requests, vllm-default, 4 instances', fn: () => void (sink += runReplay({ trace, profile: 'vllm-default' }).events) },
      { name: 'replay 100 Mooncake requests, kvmgr-default, 4 instances', fn: () => void (sink += runReplay({ trace, profile: 'kvmgr-default' }).events) },
    ],
    notes: { probeEvents: probe.events, probeMs: Math.round(probeMs) },
  };
}
