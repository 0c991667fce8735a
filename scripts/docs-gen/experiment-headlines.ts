/**
 * Prints the README's experiment headlines: chosen verdict lines (with their 95% CIs) and the
 * goodput-knee rows, read from the GENERATED blocks of `docs/experiments/<study>.md` (which
 * `scripts/docs-experiments.ts` writes from `kvmgr experiment run`). Run by `pnpm docs:gen
 * experiment-headlines`; a missing line is an error naming it (a renamed hypothesis must not
 * silently drop out of the README).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot as root } from '../shared-data.js';

const BEGIN = '<!-- BEGIN GENERATED';

/** The generated part of a study's page. */
function generated(study: string): string {
  const text = readFileSync(join(root, 'docs', 'experiments', `${study}.md`), 'utf8');
  const at = text.indexOf(BEGIN);
  if (at < 0) throw new Error(`docs/experiments/${study}.md: no generated block`);
  return text.slice(at);
}

/** The verdict line of hypothesis `id`, without its statement: `ID: verdict. metric a vs b, Δ … [CI], n pairs.` */
function verdict(study: string, id: string, label: string): string {
  const line = generated(study)
    .split('\n')
    .find((l) => l.startsWith(`- **${id}: `));
  if (line === undefined) throw new Error(`docs/experiments/${study}.md: no verdict line for ${id}`);
  const m = /^- \*\*([^:]+): (\w+)\.\*\* .*?\. (\S+) .*?(Δ .*?\], \d+ pairs?)/.exec(line);
  if (m === null) throw new Error(`docs/experiments/${study}.md: unexpected verdict line for ${id}: ${line}`);
  return `${label} — ${m[1]} ${m[2]}: ${m[3]} ${m[4]}`;
}

/** The knee row of `workload` / `configuration`: its knee goodput and peak goodput against the baseline. */
function knee(study: string, workload: string, configuration: string, label: string): string {
  const row = generated(study)
    .split('\n')
    .map((l) => l.split('|').map((c) => c.trim()))
    .find((c) => c[1] === workload && c[3] === configuration && (c[4] ?? '').endsWith('×'));
  if (row === undefined) throw new Error(`docs/experiments/${study}.md: no knee row for ${workload} / ${configuration}`);
  return `${label} — knee at ${row[4]} the trace's rate; goodput at the knee ${row[8]} vllm-default's, peak goodput ${row[9]} (means over seeds)`;
}

const lines = [
  knee('reach-2x', 'mooncake-sample', 'kvmgr-default', 'Mooncake sample, kvmgr-default'),
  knee('reach-2x', 'azure-conv', 'kvmgr-default', 'Azure conversations, kvmgr-default'),
  verdict('kv-pressure-routing', 'H6-1', 'KV-aware routing vs round-robin, goodput under KV pressure'),
  verdict('kv-pressure-routing', 'H7-2', 'kv-pressure scorer vs kv, preemptions with a CPU tier'),
  verdict('memory-stress', 'M-1', 'admission by predicted footprint, SLO attainment at the tightest KV'),
  verdict('memory-stress', 'M-2', 'admission by predicted footprint, preemptions'),
  verdict('pd-long-context', 'PD-1', '1P3D vs 4 aggregated, long-document goodput'),
  verdict('pd-long-context', 'LC-1', 'kvmgr-default vs vllm-default, long contexts on a tiered cache'),
];
for (const l of lines) console.log(`- ${l}`);
