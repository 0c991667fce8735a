/**
 * Block hit ratios on the Mooncake conversation trace for every policy and Belady.
 *
 *   node --conditions=@kvmgr/source --import tsx scripts/hit-ratio-table.ts [trace.jsonl]
 *
 * The trace defaults to the Mooncake conversation trace in the shared data folder
 * (`$KVMGR_SHARED/traces`, else `../shared/traces` beside the repository); without it the
 * script says so and exits 0.
 *
 * Prefix semantics: hit = leading cached blocks at arrival; then every prompt block is
 * touched or inserted in order (512-token blocks).
 */
import { sharedTraceOrSkip } from '../../../scripts/shared-data.js';
import { EVICTION_POLICY_NAMES, blockAccessSequence, createEvictionPolicy, readBlockTrace, replayBlockTrace } from '../src/index.js';

const path = process.argv[2] ?? sharedTraceOrSkip('hit-ratio-table', 'mooncake_fast25_conversation_trace.jsonl');
const requests = readBlockTrace(path);
const accesses = blockAccessSequence(requests);
const capacities = [1000, 3000, 10000, 30000];
const t0 = performance.now();
const rows: string[] = [];
const header = ['capacity (blocks)', ...EVICTION_POLICY_NAMES, 'lru / belady', 'predictive / belady'];
rows.push(`| ${header.join(' | ')} |`, `|${header.map(() => '---:').join('|')}|`);
for (const capacity of capacities) {
  const ratios: Record<string, number> = {};
  for (const name of EVICTION_POLICY_NAMES) {
    const policy = createEvictionPolicy(name, { capacity, accesses });
    ratios[name] = replayBlockTrace(requests, policy, capacity).hitRatio;
  }
  const b = ratios.belady as number;
  const pct = (x: number): string => `${Math.round((100 * x) / b)}%`;
  rows.push(
    `| ${capacity} | ${EVICTION_POLICY_NAMES.map((n) => (ratios[n] as number).toFixed(3)).join(' | ')} | ${pct(ratios.lru as number)} | ${pct(ratios.predictive as number)} |`,
  );
}
console.log(`${requests.length} requests, ${accesses.length} block references (${path.split('/').pop()})\n`);
console.log(rows.join('\n'));
console.log(`\n(${((performance.now() - t0) / 1000).toFixed(1)} s)`);
