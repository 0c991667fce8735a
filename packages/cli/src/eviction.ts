/**
 * `kvmgr eviction eval`: block hit ratios of `@kvmgr/eviction`'s node-level policies on a
 * block trace (Mooncake JSONL `hash_ids`), with prefix semantics and Belady (offline MIN, which
 * reads the future) as the upper bound; prints a table and writes eviction.json and
 * eviction.html (hit ratio against capacity, one line per policy).
 */
import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KvmgrError } from '@kvmgr/core';
import {
  EVICTION_POLICY_NAMES,
  type EvictionPolicyName,
  type SuitePoint,
  type SuiteWorkload,
  blockAccessSequence,
  createEvictionPolicy,
  generatedSuiteWorkloads,
  readBlockTrace,
  replayBlockTrace,
  runEvictionSuite,
} from '@kvmgr/eviction';
import { writeOutputs } from './output.js';
import { checkOutDir, requireRequests } from './preflight.js';
import { createProgress } from './progress.js';
import { BUNDLED_TRACE, EVICTION_DEFAULTS } from './defaults.js';
import { renderReportHtml } from './report-html.js';
import { fmtNum, formatTable } from './table.js';

/** Flags of `kvmgr eviction eval`. */
export interface EvictionEvalFlags {
  trace?: string;
  capacities?: number[];
  policies?: string[];
  limit?: number;
  json?: boolean;
  out?: string;
  progress?: boolean;
  /** Run every policy over the workload suite (the Mooncake trace + generated shapes). */
  suite?: boolean;
}

/** The whole Mooncake conversation trace, where the workspace keeps it beside the repository. */
const SHARED_MOONCAKE = fileURLToPath(new URL('../../../../shared/traces/mooncake_fast25_conversation_trace.jsonl', import.meta.url));

/** One (policy, capacity) point of the evaluation. */
export interface EvictionPoint {
  readonly policy: string;
  /** Cache size, blocks. */
  readonly capacity: number;
  /** Blocks served from cache / block references. */
  readonly hitRatio: number;
  readonly hitBlocks: number;
  readonly evictions: number;
  /** hitRatio / Belady's at the same capacity; absent when Belady is not in the run or gets 0. */
  readonly shareOfBelady?: number;
}

/**
 * Checks policy names against the registry.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` naming the first unknown one and the known names.
 */
export function validatePolicies(names: readonly string[]): EvictionPolicyName[] {
  if (names.length === 0) throw new KvmgrError('KVMGR_INVALID_ARGUMENT', '--policies: expected at least one policy name');
  for (const n of names) {
    if (!(EVICTION_POLICY_NAMES as readonly string[]).includes(n)) {
      throw new KvmgrError('KVMGR_INVALID_ARGUMENT', `--policies: unknown policy ${JSON.stringify(n)}; expected any of ${EVICTION_POLICY_NAMES.join(', ')}`, {
        details: { flag: '--policies', value: n, expected: EVICTION_POLICY_NAMES },
      });
    }
  }
  return [...new Set(names)] as EvictionPolicyName[];
}

/** Runs `kvmgr eviction eval`. */
export async function runEvictionEval(flags: EvictionEvalFlags): Promise<void> {
  if (flags.suite) return runSuite(flags);
  const trace = flags.trace ?? BUNDLED_TRACE;
  if (!existsSync(trace)) throw new KvmgrError('KVMGR_NOT_FOUND', `--trace ${trace}: no such file`);
  if (!trace.endsWith('.jsonl')) {
    throw new KvmgrError('KVMGR_INVALID_ARGUMENT', `--trace ${trace}: expected a block trace, a .jsonl file with hash_ids per request (Mooncake format); length-only traces have no blocks to cache`);
  }
  const policies = validatePolicies(flags.policies ?? EVICTION_DEFAULTS.policies);
  const capacities = [...new Set(flags.capacities ?? EVICTION_DEFAULTS.capacities)].sort((a, b) => a - b);
  if (!flags.json) checkOutDir(flags.out ?? EVICTION_DEFAULTS.out);
  const all = readBlockTrace(trace);
  requireRequests(all.length, trace);
  const requests = flags.limit === undefined ? all : all.slice(0, flags.limit);
  const accesses = blockAccessSequence(requests);
  const label = trace === BUNDLED_TRACE ? 'bundled Mooncake conversation sample' : basename(trace);

  const progress = createProgress(flags.progress !== false && process.stderr.isTTY === true);
  const started = performance.now();
  const raw: Omit<EvictionPoint, 'shareOfBelady'>[] = [];
  progress.start('eviction', policies.length * capacities.length, 'replays');
  try {
    for (const policy of policies) {
      for (const capacity of capacities) {
        const r = replayBlockTrace(requests, createEvictionPolicy(policy, { capacity, accesses }), capacity);
        raw.push({ policy, capacity, hitRatio: r.hitRatio, hitBlocks: r.hitBlocks, evictions: r.evictions });
        progress.update(raw.length);
      }
    }
  } finally {
    progress.stop();
  }
  const belady = new Map(raw.filter((p) => p.policy === 'belady').map((p) => [p.capacity, p.hitRatio]));
  const points: EvictionPoint[] = raw.map((p) => {
    const b = belady.get(p.capacity);
    return b !== undefined && b > 0 ? { ...p, shareOfBelady: p.hitRatio / b } : p;
  });
  const seconds = (performance.now() - started) / 1000;

  if (flags.json) {
    process.stdout.write(`${JSON.stringify(report(label, requests.length, accesses.length, points), null, 2)}\n`);
    return;
  }
  const at = (policy: string, capacity: number) => points.find((p) => p.policy === policy && p.capacity === capacity) as EvictionPoint;
  const header = ['capacity (blocks)', ...policies];
  const rows = capacities.map((c) => [String(c), ...policies.map((p) => fmtNum(at(p, c).hitRatio, 3))]);
  const lines = [
    `block hit ratio on ${label}: ${requests.length} requests, ${accesses.length} block references (prefix semantics: hit = leading cached blocks; every prompt block is then touched or inserted) in ${seconds.toFixed(1)} s`,
    '',
    formatTable(header, rows),
  ];
  const online = policies.filter((p) => p !== 'belady');
  let shareRows: string[][] = [];
  if (belady.size > 0 && online.length > 0) {
    shareRows = capacities.map((c) => [String(c), ...online.map((p) => fmtShare(at(p, c).shareOfBelady))]);
    lines.push('', 'share of Belady (offline MIN, reads the future: the upper bound)', '', formatTable(['capacity (blocks)', ...online], shareRows), '');
    for (const c of capacities) {
      const best = online.map((p) => at(p, c)).reduce((a, b) => (b.hitRatio > a.hitRatio ? b : a));
      lines.push(`${c} blocks: best online policy ${best.policy}, ${fmtNum(best.hitRatio, 3)} (${fmtShare(best.shareOfBelady)} of Belady)`);
    }
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  const out = flags.out ?? EVICTION_DEFAULTS.out;
  const html = renderReportHtml({
    title: 'kvmgr eviction: block hit ratio per policy',
    subtitle: [`trace: ${label}, ${requests.length} requests, ${accesses.length} block references; prefix semantics`],
    tables: [{ title: 'Block hit ratio', header, rows }, ...(shareRows.length > 0 ? [{ title: 'Share of Belady', header: ['capacity (blocks)', ...online], rows: shareRows }] : [])],
    charts: [
      {
        id: 'hit-ratio',
        title: 'Block hit ratio vs cache capacity',
        xLabel: 'capacity (blocks, log scale)',
        yLabel: 'block hit ratio',
        logX: true,
        symbols: true,
        series: policies.map((p) => ({
          name: p === 'belady' ? 'belady (bound)' : p,
          points: capacities.map((c) => [c, at(p, c).hitRatio] as [number, number]),
          ...(p === 'belady' ? { dashed: true, color: '#222222' } : {}),
        })),
      },
    ],
  });
  const written = writeOutputs(out, { 'eviction.json': `${JSON.stringify(report(label, requests.length, accesses.length, points), null, 2)}\n`, 'eviction.html': html });
  process.stdout.write(`\nwrote ${written.join(', ')}\n`);
}

function fmtShare(x: number | undefined): string {
  return x === undefined ? '-' : `${Math.round(100 * x)}%`;
}

function report(trace: string, requests: number, blocks: number, points: readonly EvictionPoint[]) {
  return { kind: 'kvmgr.eviction', version: 1, trace, requests, blockReferences: blocks, points };
}

/**
 * `kvmgr eviction eval --suite`: every policy over the Mooncake conversation trace (`--trace`,
 * else the whole trace in shared/traces when present, else the bundled sample) and the
 * generated shapes of `@kvmgr/eviction`; prints hit ratio and share of Belady per shape and
 * capacity, and the best fixed policy per cell; `--json` prints the points instead.
 */
async function runSuite(flags: EvictionEvalFlags): Promise<void> {
  const trace = flags.trace ?? (existsSync(SHARED_MOONCAKE) ? SHARED_MOONCAKE : BUNDLED_TRACE);
  if (!existsSync(trace)) throw new KvmgrError('KVMGR_NOT_FOUND', `--trace ${trace}: no such file`);
  const policies = validatePolicies(flags.policies ?? EVICTION_DEFAULTS.policies);
  const capacities = [...new Set(flags.capacities ?? EVICTION_DEFAULTS.capacities)].sort((a, b) => a - b);
  const real = readBlockTrace(trace);
  requireRequests(real.length, trace);
  const label = trace === BUNDLED_TRACE ? 'mooncake (bundled sample)' : 'mooncake';
  const workloads: SuiteWorkload[] = [
    { name: label, description: `Mooncake conversation trace (${basename(trace)})`, requests: flags.limit === undefined ? real : real.slice(0, flags.limit) },
    ...generatedSuiteWorkloads().map((w) => (flags.limit === undefined ? w : { ...w, requests: w.requests.slice(0, flags.limit) })),
  ];
  const progress = createProgress(flags.progress !== false && process.stderr.isTTY === true);
  const started = performance.now();
  progress.start('suite', workloads.length * policies.length * capacities.length, 'replays');
  let points: SuitePoint[];
  try {
    points = runEvictionSuite(workloads, { capacities, policies, onProgress: (d) => progress.update(d) });
  } finally {
    progress.stop();
  }
  if (flags.json) {
    process.stdout.write(`${JSON.stringify({ kind: 'kvmgr.eviction-suite', version: 1, workloads: workloads.map((w) => ({ name: w.name, description: w.description, requests: w.requests.length })), points }, null, 2)}\n`);
    return;
  }
  const at = (w: string, p: string, c: number) => points.find((x) => x.workload === w && x.policy === p && x.capacity === c) as SuitePoint;
  const online = policies.filter((p) => p !== 'belady');
  const fixed = online.filter((p) => p !== 'adaptive');
  const lines = [`eviction suite: ${policies.length} policies × ${workloads.length} workload shapes × ${capacities.length} capacities in ${((performance.now() - started) / 1000).toFixed(1)} s (block hit ratio, prefix semantics; share of Belady in parentheses)`];
  for (const w of workloads) {
    lines.push('', `${w.name}: ${w.description}; ${w.requests.length} requests`, '');
    const rows = capacities.map((c) => {
      const cells = policies.map((p) => {
        const x = at(w.name, p, c);
        return p === 'belady' ? fmtNum(x.hitRatio, 3) : `${fmtNum(x.hitRatio, 3)} (${fmtShare(x.shareOfBelady)})`;
      });
      const best = fixed.length === 0 ? undefined : fixed.map((p) => at(w.name, p, c)).reduce((a, b) => (b.hitRatio > a.hitRatio ? b : a));
      return [String(c), ...cells, best === undefined ? '-' : best.policy];
    });
    lines.push(formatTable(['capacity (blocks)', ...policies, 'best fixed'], rows));
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}
