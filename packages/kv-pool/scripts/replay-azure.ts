/**
 * Prints check 2 of the kv-pool issue (see trace-replay.ts for the model):
 *   node --conditions=@kvmgr/source --import tsx packages/kv-pool/scripts/replay-azure.ts [trace.csv] [loads]
 */
import { fileURLToPath } from 'node:url';
import { loadAzureTrace, replayLengths } from './trace-replay.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const path = process.argv[2] ?? `${here}../../../../shared/traces/azure_llm_2023_conv.csv`;
const loads = (process.argv[3] ?? '0.9,1.0,1.1').split(',').map(Number);
const reqs = loadAzureTrace(path);
const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
console.log(`trace: ${path} (${reqs.length} requests, ${(reqs.at(-1)!.arrivalUs / 60e6).toFixed(1)} min)`);
console.log('allocator      load  capacity(blocks)  fragmentation  (internal  external)  utilization  allocated  mean wait ms  compactions  moved blocks');
for (const load of loads) {
  for (const allocator of ['paged', 'buddy', 'buddy+compact'] as const) {
    const r = replayLengths(reqs, { allocator, load });
    console.log(
      [
        allocator.padEnd(13),
        load.toFixed(2).padStart(5),
        String(r.capacityBlocks).padStart(17),
        pct(r.fragmentation).padStart(14),
        pct(r.internalFragmentation).padStart(10),
        pct(r.externalFragmentation).padStart(9),
        pct(r.utilization).padStart(12),
        pct(r.allocatedFraction).padStart(10),
        r.meanWaitMs.toFixed(1).padStart(13),
        String(r.compactions).padStart(12),
        String(r.movedBlocks).padStart(13),
      ].join(' '),
    );
  }
}
