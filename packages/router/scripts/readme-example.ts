/** The README example, runnable: `node --conditions=@kvmgr/source --import tsx packages/router/scripts/readme-example.ts`. */
import { KvBlockIndex, createRouter } from '../src/index.js';
import type { EngineSnapshot } from '@kvmgr/core';

// The index is fed by KV events from each instance (vLLM's BlockStored / BlockRemoved / AllBlocksCleared).
const index = new KvBlockIndex();
index.addInstance('pod-b');
const prompt = Array.from({ length: 40 }, (_, i) => 100 + i); // 2 full blocks of 16 + 8 tokens
index.applyEvent('pod-b', {
  type: 'BlockStored',
  blockHashes: [0x1111n, 0x2222n], // engine keys: any u64, mapped to local keys via the token ids
  parentBlockHash: null,
  tokenIds: prompt.slice(0, 32),
  blockSize: 16,
});

const snapshot = (instanceId: string, waiting: number, kvUtilization: number): EngineSnapshot => ({
  instanceId, role: 'both', timeUs: 0, kvUtilization, waiting, running: 2,
  pendingTransferLatency: 0, kvThrashingRate: 0, prefixCacheQueries: 0, prefixCacheHits: 0,
});
const snapshots = [snapshot('pod-a', 0, 0.2), snapshot('pod-b', 1, 0.4)];

const router = createRouter('pa:3,qd:2,kv:2', { index }); // or 'kvmgr-default', 'round-robin', YAML, an object
const d = router.route(
  { requestId: 'r1', arrivalUs: 0, promptTokens: prompt.length, maxTokens: 64, promptTokenIds: prompt },
  snapshots,
  0,
);
console.log(d.instanceId, d.reason, d.cachedTokens, Array.from(d.scores ?? []));
// pod-b scored 32 [ 3.6, 4.2 ]   (pod-a: 0 + 2·1 + 2·0.8; pod-b: 3·2/2 + 2·0 + 2·0.6)
