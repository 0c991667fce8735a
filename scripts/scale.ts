/**
 * Scale check (issue #16, check 3): wall time of a full-trace `kvmgr replay` at HEAD against a
 * baseline git ref, measured in the same run so both sides see the same machine and load.
 *
 * It makes a temporary git worktree of the baseline ref (default `078cbea`, the commit before
 * the engine switch), runs `pnpm install --offline --frozen-lockfile` there, then runs the same
 * replay — `kvmgr replay --trace <full Mooncake conversation trace> --baseline vllm-default
 * --candidate kvmgr-default` — in both trees, alternating which tree goes first each round, for
 * N rounds (after one untimed 20-request replay in each tree to warm tsx's transform cache). Per profile it prints the minimum simulation wall time (the `wallS` each run writes
 * to `report.json`: `runReplay` plus the mapping of its result, not trace loading or process
 * start) of each side and the ratio HEAD / base, and whether the per-request rows
 * (`requests.csv`) of HEAD and base are identical; last, the wall and CPU seconds (user + system,
 * all threads) of the whole replay processes, trace loading included. The worktree is removed at the end (also on
 * error or Ctrl-C).
 *
 *   nice node --import tsx scripts/scale.ts [--base REF] [--rounds N] [--trace FILE] [--limit N] [--keep]
 *
 * HEAD is this checkout's working tree as it is (uncommitted changes included; the header says
 * so). `--trace` defaults to `../shared/traces/mooncake_fast25_conversation_trace.jsonl` next to
 * the repository; when that file is absent the script says so, naming it, and exits 0.
 * Timings are printed, never asserted: these machines are shared and noisy, so compare the ratio,
 * not absolute seconds across runs.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DEFAULT_BASE = '078cbea';
const DEFAULT_TRACE = resolve(ROOT, '../shared/traces/mooncake_fast25_conversation_trace.jsonl');
const PROFILES = ['vllm-default', 'kvmgr-default'] as const;

const { values: flags } = parseArgs({
  options: {
    base: { type: 'string', default: DEFAULT_BASE },
    rounds: { type: 'string', default: '2' },
    trace: { type: 'string', default: DEFAULT_TRACE },
    limit: { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
});

function fail(message: string): never {
  process.stderr.write(`scale: ${message}\n`);
  process.exit(1);
}

const rounds = Number(flags.rounds);
if (!Number.isSafeInteger(rounds) || rounds < 1) fail(`--rounds ${flags.rounds}: expected a positive integer`);
if (flags.limit !== undefined && !/^[1-9]\d*$/.test(flags.limit)) fail(`--limit ${flags.limit}: expected a positive integer`);
const trace = resolve(flags.trace);
if (!existsSync(trace)) {
  process.stdout.write(`scale: skipped: the full trace ${trace} is not here (pass --trace FILE)\n`);
  process.exit(0);
}

/** Runs a command to completion; stops the script with its output when it fails. */
function sh(cmd: string, args: readonly string[], cwd: string, env: NodeJS.ProcessEnv = {}): string {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', maxBuffer: 64 << 20, env: { ...process.env, ...env } });
  if (r.status !== 0) fail(`${cmd} ${args.join(' ')} (in ${cwd}) exited ${r.status ?? r.signal}:\n${r.stderr || r.stdout}`);
  return r.stdout;
}

/** One side of the comparison: a checkout that can run `kvmgr replay` from its sources. */
interface Tree {
  readonly name: 'HEAD' | 'base';
  readonly dir: string;
  readonly rev: string;
}

/** What one replay of one tree measured. */
interface RunTimes {
  /** Simulation wall time per profile, s (`report.json` `baseline.wallS` / `candidate.wallS`). */
  readonly wallS: Readonly<Record<string, number>>;
  /** Wall time of the whole `kvmgr replay` process, s. */
  readonly processS: number;
  /** CPU time (user + system, all threads) of the whole `kvmgr replay` process, s: less noisy than wall time on a shared machine. */
  readonly processCpuS: number;
  /** sha256 of each profile's rows of `requests.csv` (the per-request results). */
  readonly rowsHash: Readonly<Record<string, string>>;
}

/** Preloaded into each replay: writes the process's CPU seconds to `$KVMGR_SCALE_CPU_OUT` on exit (same code for both trees). */
const CPU_PROBE = `data:text/javascript,${encodeURIComponent(
  "import { writeFileSync } from 'node:fs'; process.on('exit', () => { const u = process.cpuUsage(); writeFileSync(process.env.KVMGR_SCALE_CPU_OUT, String((u.user + u.system) / 1e6)); });",
)}`;

function replay(tree: Tree, out: string): RunTimes {
  const args = [
    '--import',
    CPU_PROBE,
    '--conditions=@kvmgr/source',
    '--import',
    'tsx',
    'packages/cli/src/bin.ts',
    'replay',
    '--trace',
    trace,
    '--baseline',
    PROFILES[0],
    '--candidate',
    PROFILES[1],
    '--out',
    out,
    ...(flags.limit === undefined ? [] : ['--limit', flags.limit]),
  ];
  const cpuFile = `${out}.cpu`;
  const t0 = performance.now();
  sh(process.execPath, args, tree.dir, { KVMGR_SCALE_CPU_OUT: cpuFile });
  const processS = (performance.now() - t0) / 1000;
  const processCpuS = Number(readFileSync(cpuFile, 'utf8'));
  const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as Record<'baseline' | 'candidate', { profile: string; wallS: number }>;
  const wallS: Record<string, number> = {};
  for (const side of ['baseline', 'candidate'] as const) wallS[report[side].profile] = report[side].wallS;
  const rowsHash: Record<string, string> = {};
  const lines = readFileSync(join(out, 'requests.csv'), 'utf8').split('\n').slice(1);
  for (const p of PROFILES) {
    const h = createHash('sha256');
    for (const line of lines) if (line.startsWith(`${p},`)) h.update(`${line}\n`);
    rowsHash[p] = h.digest('hex');
  }
  return { wallS, processS, processCpuS, rowsHash };
}

const scratch = mkdtempSync(join(tmpdir(), 'kvmgr-scale-'));
const baseDir = join(scratch, 'base');
let worktreeAdded = false;
function cleanup(): void {
  if (worktreeAdded && !flags.keep) {
    spawnSync('git', ['worktree', 'remove', '--force', baseDir], { cwd: ROOT });
    worktreeAdded = false;
  }
  if (!flags.keep) rmSync(scratch, { recursive: true, force: true });
}
// `exit` handlers run on every way out (`fail` included); they may only do synchronous work.
process.on('exit', cleanup);
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => process.exit(130));

{
  const headRev = sh('git', ['rev-parse', '--short', 'HEAD'], ROOT).trim();
  const dirty = sh('git', ['status', '--porcelain', '--untracked-files=no'], ROOT).trim() !== '';
  const baseRev = sh('git', ['rev-parse', '--short', `${flags.base}^{commit}`], ROOT).trim();
  process.stderr.write(`scale: worktree of ${flags.base} (${baseRev}) at ${baseDir}\n`);
  sh('git', ['worktree', 'add', '--detach', baseDir, baseRev], ROOT);
  worktreeAdded = true;
  process.stderr.write('scale: pnpm install --offline --frozen-lockfile\n');
  sh('pnpm', ['install', '--offline', '--frozen-lockfile'], baseDir);

  const head: Tree = { name: 'HEAD', dir: ROOT, rev: `${headRev}${dirty ? ' + uncommitted changes' : ''}` };
  const base: Tree = { name: 'base', dir: baseDir, rev: baseRev };
  const runs: Record<Tree['name'], RunTimes[]> = { HEAD: [], base: [] };
  // A fresh tree's first run also pays tsx's transform cache: warm both up, untimed.
  for (const tree of [head, base]) sh(process.execPath, ['--conditions=@kvmgr/source', '--import', 'tsx', 'packages/cli/src/bin.ts', 'replay', '--trace', trace, '--limit', '20', '--out', join(scratch, `warm-${tree.name}`)], tree.dir);
  for (let r = 0; r < rounds; r++) {
    // Alternate the order so a drift in machine load does not always favour one side.
    for (const tree of r % 2 === 0 ? [head, base] : [base, head]) {
      const res = replay(tree, join(scratch, `out-${tree.name}-${r}`));
      runs[tree.name].push(res);
      process.stderr.write(
        `scale: round ${r + 1}/${rounds} ${tree.name}: ${PROFILES.map((p) => `${p} ${res.wallS[p]?.toFixed(1)} s`).join(', ')} (process ${res.processS.toFixed(1)} s, ${res.processCpuS.toFixed(1)} CPU s)\n`,
      );
    }
  }

  const min = (xs: readonly number[]): number => Math.min(...xs);
  const lines = [
    `trace ${trace}${flags.limit === undefined ? '' : ` (first ${flags.limit} requests)`} | ${rounds} round${rounds === 1 ? '' : 's'}, alternating | node ${process.version}`,
    `HEAD ${head.rev} vs base ${flags.base} (${base.rev})`,
    '',
    'profile          HEAD min (s)  base min (s)  HEAD/base  rows identical',
  ];
  for (const p of PROFILES) {
    const h = min(runs.HEAD.map((x) => x.wallS[p] as number));
    const b = min(runs.base.map((x) => x.wallS[p] as number));
    const same = runs.HEAD[0]?.rowsHash[p] === runs.base[0]?.rowsHash[p];
    lines.push(`${p.padEnd(15)}  ${h.toFixed(1).padStart(12)}  ${b.toFixed(1).padStart(12)}  ${(h / b).toFixed(2).padStart(8)}×  ${same ? 'yes' : 'no'}`);
  }
  const hp = min(runs.HEAD.map((x) => x.processS));
  const bp = min(runs.base.map((x) => x.processS));
  lines.push(`${'whole process'.padEnd(15)}  ${hp.toFixed(1).padStart(12)}  ${bp.toFixed(1).padStart(12)}  ${(hp / bp).toFixed(2).padStart(8)}×`);
  const hc = min(runs.HEAD.map((x) => x.processCpuS));
  const bc = min(runs.base.map((x) => x.processCpuS));
  lines.push(`${'process CPU s'.padEnd(15)}  ${hc.toFixed(1).padStart(12)}  ${bc.toFixed(1).padStart(12)}  ${(hc / bc).toFixed(2).padStart(8)}×`);
  process.stdout.write(`${lines.join('\n')}\n`);
}
