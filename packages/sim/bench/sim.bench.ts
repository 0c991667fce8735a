import { join } from 'node:path';
import type { BenchSuite } from '../../../bench/types.js';
import { loadMooncakeTrace, runReplay } from '../src/index.js';

/**
 * Simulator benchmarks: whole replays of a Mooncake slice (one op = one replay of 100 requests
 * on 4 instances), the engine core's radix prefix index against its block-hash index (the peer)
 * in the same run.
 */
export function createSuite(): BenchSuite {
  let sink = 0;
  const trace = loadMooncakeTrace(join(import.meta.dirname, '../../../../shared/traces/mooncake_fast25_conversation_trace.jsonl'), { limit: 100 });
  const t0 = performance.now();
  const probe = runReplay({ trace, profile: 'vllm-default' });
  const probeMs = performance.now() - t0;
  return {
    name: 'sim',
    cases: [
      {
        name: 'replay 100 Mooncake requests, vllm-default, 4 instances, hash-map index (peer)',
        fn: () => void (sink += runReplay({ trace, profile: 'vllm-default', prefixIndex: 'hash-map' }).events),
      },
      {
        name: 'replay 100 Mooncake requests, vllm-default, 4 instances',
        baseline: 'replay 100 Mooncake requests, vllm-default, 4 instances, hash-map index (peer)',
        fn: () => void (sink += runReplay({ trace, profile: 'vllm-default' }).events),
      },
      { name: 'replay 100 Mooncake requests, kvmgr-default, 4 instances', fn: () => void (sink += runReplay({ trace, profile: 'kvmgr-default' }).events) },
    ],
    notes: { probeEvents: probe.events, probeMs: Math.round(probeMs) },
  };
}
