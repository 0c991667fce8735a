import type { EngineSnapshot, KvEvent } from '@kvmgr/core';
import { createRng } from '@kvmgr/core';
import type { BenchSuite } from '../../../bench/types.js';
import { KvBlockIndex, createPrefixMatch, createRouter, localKeysFromTokens, selectSloPair } from '../src/index.js';
import type { RouteRequest } from '../src/index.js';

const INSTANCES = 16;
const PREFIXES = 8000;
const BLOCKS = 128; // 2,048 tokens at blockSize 16

/**
 * Router benchmarks: one routing decision for a 2,048-token prompt (128 blocks) over 16
 * instances against a 1M-key index, the SLO pair optimizer over 10 × 10 instances, and the
 * parts (prefix match, key hashing, event ingestion). The naive peer is a `Map`-based index
 * with the same consecutive-match scoring.
 */
export function createSuite(): BenchSuite {
  const rng = createRng(42);
  const index = new KvBlockIndex({ maxKeys: 1 << 20, maxInstancesPerKey: 8 });
  const ids = Array.from({ length: INSTANCES }, (_, i) => `pod-${i}`);
  for (const id of ids) index.addInstance(id);
  // 8,000 cached 128-block prefixes (1,024,000 keys): each on one GPU, its first half on a neighbour's CPU
  const prefixKeys: Uint32Array[] = [];
  const naive = new Map<number, number[]>(); // peer: lo → instance indices (collisions ignored)
  for (let p = 0; p < PREFIXES; p++) {
    const keys = new Uint32Array(2 * BLOCKS);
    for (let i = 0; i < keys.length; i++) keys[i] = Math.floor(rng.next() * 4294967296);
    prefixKeys.push(keys);
    index.recordBlocks(ids[p % INSTANCES] as string, keys, 'gpu');
    index.recordBlocks(ids[(p + 1) % INSTANCES] as string, keys, 'cpu', 0, BLOCKS / 2);
    for (let b = 0; b < BLOCKS; b++) {
      const holders = [p % INSTANCES];
      if (b < BLOCKS / 2) holders.push((p + 1) % INSTANCES);
      naive.set(keys[2 * b + 1] as number, holders);
    }
  }
  const snapshots: EngineSnapshot[] = ids.map((instanceId, i) => ({
    instanceId,
    role: 'both',
    timeUs: 0,
    kvUtilization: (i % 10) / 10,
    waiting: i % 5,
    running: 4 + (i % 7),
    pendingTransferLatency: (i % 3) * 2000,
    kvThrashingRate: i % 4,
    prefixCacheQueries: 0,
    prefixCacheHits: 0,
  }));
  // requests: a cached prefix (full 128-block walk) with a fresh suffix half the time
  const requests: RouteRequest[] = Array.from({ length: 256 }, (_, r) => {
    const base = prefixKeys[(r * 31) % PREFIXES] as Uint32Array;
    const localKeys = Uint32Array.from(base);
    if (r % 2 === 1) for (let i = BLOCKS; i < 2 * BLOCKS; i++) localKeys[i] = Math.floor(rng.next() * 4294967296);
    return { requestId: `r${r}`, arrivalUs: 0, promptTokens: BLOCKS * 16, maxTokens: 128, localKeys };
  });
  const router = createRouter('kvmgr-default', { index });
  const rr = createRouter('round-robin', { index });
  let n = 0;
  let sink = 0;
  const m = createPrefixMatch(index.maxInstances);

  function naiveRoute(req: RouteRequest): number {
    const keys = req.localKeys as Uint32Array;
    const matched = new Map<number, number>();
    for (let b = 0; b < BLOCKS; b++) {
      const hs = naive.get(keys[2 * b + 1] as number);
      if (hs === undefined) break;
      let adv = false;
      for (const h of hs) {
        if ((matched.get(h) ?? 0) === b) {
          matched.set(h, b + 1);
          adv = true;
        }
      }
      if (!adv) break;
    }
    let best = -1;
    let bestScore = -1;
    for (let i = 0; i < INSTANCES; i++) {
      const s = snapshots[i] as EngineSnapshot;
      const score = (3 * (matched.get(i) ?? 0)) / BLOCKS + 2 * (1 - s.waiting / 4) + 2 * (1 - s.kvUtilization);
      if (score > bestScore) {
        bestScore = score;
        best = i;
      }
    }
    return best;
  }

  // P/D: 10 prefill + 10 decode instances
  const pdSnaps: EngineSnapshot[] = [
    ...Array.from({ length: 10 }, (_, i) => ({ ...(snapshots[i] as EngineSnapshot), instanceId: `p-${i}`, role: 'prefill' as const })),
    ...Array.from({ length: 10 }, (_, i) => ({ ...(snapshots[i + 5] as EngineSnapshot), instanceId: `d-${i}`, role: 'decode' as const })),
  ];
  const pdIndex = new KvBlockIndex({ maxKeys: 1 << 16 });
  const pdRouter = createRouter({ scorers: 'pa:3,qd:2,kp:2', speculativeTtlMs: 0 }, { index: pdIndex });
  const sloReq: RouteRequest = {
    requestId: 'slo',
    arrivalUs: 0,
    promptTokens: 2048,
    maxTokens: 128,
    localKeys: requests[0]?.localKeys as Uint32Array,
    slo: { ttftMs: 2000, tpotMs: 80 },
  };
  const pre = pdSnaps.slice(0, 10).map((snapshot, i) => ({ snapshot, prefillMs: 100 + 37 * i }));
  const dec = pdSnaps.slice(10).map((snapshot, i) => ({ snapshot, decodeWaitMs: 10 * i, tpotMs: 20 + 3 * i, tokensToMove: 2048 }));
  const pairRng = createRng(1);

  const tokens = Uint32Array.from({ length: 2048 }, (_, i) => (i * 2654435761) >>> 16);
  const evIndex = new KvBlockIndex({ maxKeys: 1 << 16 });
  evIndex.addInstance('e');
  const evHashes = Array.from({ length: 8 }, (_, i) => BigInt(i + 1) * 0x9e3779b97f4a7c15n);
  const stored: KvEvent = {
    type: 'BlockStored',
    blockHashes: evHashes,
    parentBlockHash: null,
    tokenIds: Array.from({ length: 128 }, (_, i) => i),
    blockSize: 16,
  };
  const removed: KvEvent = { type: 'BlockRemoved', blockHashes: evHashes };

  return {
    name: 'router',
    notes: { indexKeys: index.size, instances: INSTANCES, blocksPerRequest: BLOCKS },
    cases: [
      {
        name: 'route 2K-token prompt, 16 instances, 1M-key index (naive Map peer)',
        fn: () => void (sink += naiveRoute(requests[n++ & 255] as RouteRequest)),
        latencySamples: 20000,
      },
      {
        name: 'route 2K-token prompt, 16 instances, 1M-key index (kvmgr-default)',
        fn: () => void (sink += router.route(requests[n++ & 255] as RouteRequest, snapshots, n).position),
        baseline: 'route 2K-token prompt, 16 instances, 1M-key index (naive Map peer)',
        latencySamples: 20000,
      },
      {
        name: 'route round-robin (floor)',
        fn: () => void (sink += rr.route(requests[n++ & 255] as RouteRequest, snapshots, n).position),
        latencySamples: 20000,
      },
      {
        name: 'matchPrefix 128 blocks, 1M keys',
        fn: () => {
          index.matchPrefix(requests[n++ & 255]?.localKeys as Uint32Array, BLOCKS, 0, m);
          sink += m.matchedBlocks[0] as number;
        },
        latencySamples: 20000,
      },
      {
        name: 'localKeysFromTokens 2048 tokens',
        fn: () => void (sink += localKeysFromTokens(tokens, 16).length),
        latencySamples: 5000,
      },
      {
        name: 'routePd SLO pair optimizer, 10 x 10 instances',
        fn: () => void (sink += pdRouter.routePd(sloReq, pdSnaps, 0).disaggregated ? 1 : 0),
        latencySamples: 20000,
      },
      {
        name: 'selectSloPair 10 x 10 (predictions given)',
        fn: () => void (sink += selectSloPair(pre, dec, () => 5, { ttftMs: 2000, tpotMs: 80 }, pairRng)?.pairsEvaluated ?? 0),
        latencySamples: 20000,
      },
      {
        name: 'applyEvent BlockStored + BlockRemoved, 8 blocks x 16 tokens',
        fn: () => {
          evIndex.applyEvent('e', stored);
          sink += evIndex.size;
          evIndex.applyEvent('e', removed);
        },
      },
    ],
  };
}
