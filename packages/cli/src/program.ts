/**
 * The `kvmgr` command tree (commander). Each command validates its flags, then calls a thin
 * action over the packages; errors become one line on stderr and a non-zero exit.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { EVICTION_POLICY_NAMES } from '@kvmgr/eviction';
import { Command, Option } from 'commander';
import { parseDurationMs, parseNonNegativeInt, parseNumberList, parsePositiveInt, parsePositiveIntList, parsePositiveNumber } from './parse.js';

/** Bundled trace used when `--trace` is not given (first 3,000 requests of Mooncake's conversation trace). */
export const BUNDLED_TRACE = fileURLToPath(new URL('../data/mooncake-conversation-sample.jsonl', import.meta.url));

/** Defaults shared by replay, ab and sweep. */
export const DEFAULTS = Object.freeze({
  model: 'Llama-3.1-8B-Instruct',
  gpu: 'H100',
  tp: 1,
  instances: 4,
  baseline: 'vllm-default',
  candidate: 'kvmgr-default',
  rateScale: 1,
  sloTtft: '2s',
  sloTpot: '100ms',
  seed: 1,
  out: 'kvmgr-report',
});

/** Flags shared by replay, ab and sweep. */
function addRunOptions(cmd: Command): Command {
  return cmd
    .option('--trace <file>', 'trace to replay: Mooncake JSONL (hash_ids of 512-token blocks), Azure CSV, or a length-only CSV (default: the bundled Mooncake conversation sample, 3,000 requests)')
    .option('--lenient', 'skip malformed trace rows and count them instead of stopping at the first one (default: stop with file, line and reason)')
    .option('--limit <n>', 'replay only the first N requests of the trace (default: all)', (v) => parsePositiveInt('--limit', v))
    .option('--model <name>', `model whose latency and KV geometry are simulated (default: ${DEFAULTS.model})`)
    .option('--gpu <name>', `GPU of every instance, e.g. h100, a100-80 (default: ${DEFAULTS.gpu})`)
    .option('--tp <n>', `tensor-parallel degree per instance (default: ${DEFAULTS.tp})`, (v) => parsePositiveInt('--tp', v))
    .option('--instances <n>', `engine instances in the cluster (default: ${DEFAULTS.instances})`, (v) => parsePositiveInt('--instances', v))
    .option('--rate-scale <x>', `multiply the trace's arrival rate by x (> 0; 2 = twice as fast) (default: ${DEFAULTS.rateScale})`, (v) => parsePositiveNumber('--rate-scale', v))
    .option('--slo-ttft <duration>', `time-to-first-token SLO, with a unit: 500ms, 2s (default: ${DEFAULTS.sloTtft})`, (v) => {
      parseDurationMs('--slo-ttft', v);
      return v;
    })
    .option('--slo-tpot <duration>', `time-per-output-token SLO, with a unit: 50ms (default: ${DEFAULTS.sloTpot})`, (v) => {
      parseDurationMs('--slo-tpot', v);
      return v;
    })
    .option('--seed <n>', `seed of every random choice (same seed, same results) (default: ${DEFAULTS.seed})`, (v) => parseNonNegativeInt('--seed', v))
    .addOption(
      new Option('--prefix-index <kind>', "engine prefix index: 'hash-map' (vLLM-style block hashes, per-block free queue) or 'radix' (@kvmgr/prefix-cache radix tree, leaf-first eviction) (default: hash-map)").choices(['hash-map', 'radix']),
    )
    .option('--config <file>', 'YAML file with any of these options (kebab- or camelCase keys); flags win')
    .option('--no-progress', 'do not draw progress bars (they go to stderr, and only on a terminal)');
}

/** Builds the program. Actions are loaded lazily so `--help` stays fast. */
export function buildProgram(): Command {
  const program = new Command('kvmgr')
    .description('KV-cache management for LLM serving: replay real traces through a simulated cluster and compare engine defaults with kvmgr.')
    .version((createRequire(import.meta.url)('../package.json') as { version: string }).version)
    .showHelpAfterError('(run with --help for usage)')
    .configureHelp({ sortOptions: false })
    // Before any subcommand is added, so they inherit it: usage errors throw and bin.ts exits 2.
    .exitOverride();

  addRunOptions(
    program
      .command('replay')
      .description(
        'Replay a trace twice through a simulated cluster — once with an engine baseline profile and round-robin routing, once with kvmgr — and print a side-by-side table; writes report.json, requests.csv and report.html.',
      ),
  )
    .option('--baseline <profile>', `baseline engine profile: vllm-default, vllm-small-gpu, sglang-default, tgi-default, lmdeploy-default (default: ${DEFAULTS.baseline})`)
    .option('--candidate <profile>', `candidate profile: kvmgr-default, kvmgr-offload (adds a 200 GiB CPU KV tier per instance), or any baseline profile (default: ${DEFAULTS.candidate})`)
    .option('--pipeline <pipeline>', "candidate scheduler pipeline: a preset name or a textual pipeline such as 'sched.step(admission{safety=0.9},prefix-cache-aware,chunked-prefill{budget=8192})' (default: the candidate profile's)")
    .option('--router <config>', "candidate router: a preset (kvmgr-default, round-robin, random) or weights such as 'pa:3,qd:2,kv:2' (default: the candidate profile's)")
    .option('--baseline-router <config>', 'baseline router (default: the baseline profile\'s, round-robin for vLLM)')
    .option('--out <dir>', `output directory for report.json, requests.csv, report.html (default: ${DEFAULTS.out})`)
    .action(async (opts, cmd: Command) => {
      const { runReplayCommand } = await import('./replay.js');
      await runReplayCommand(opts, cmd);
    });

  addRunOptions(program.command('ab').description('A/B two scheduler pipelines (or profiles) on the same trace and seed; prints paired per-request differences with bootstrap 95% confidence intervals.'))
    .requiredOption('--a <pipeline>', 'pipeline A: a profile name (vllm-default, kvmgr-default, …), a scheduler preset, or a textual pipeline')
    .requiredOption('--b <pipeline>', 'pipeline B, same forms as --a')
    .option('--router <config>', 'router for both runs (default: round-robin, so only the pipeline differs)')
    .option('--bootstrap <n>', 'bootstrap resamples (default: 2000)', (v) => parsePositiveInt('--bootstrap', v))
    .option('--out <dir>', 'write ab.json there (default: print only)')
    .action(async (opts, cmd: Command) => {
      const { runAbCommand } = await import('./ab.js');
      await runAbCommand(opts, cmd);
    });

  addRunOptions(program.command('sweep').description("Sweep arrival rates × profiles in parallel worker threads; finds each profile's goodput knee (the highest rate with ≥ 90% SLO attainment) and plots it."))
    .option('--rates <list>', 'rate scales to sweep, comma-separated (default: 0.5,1,2,4,8)', (v) => parseNumberList('--rates', v))
    .option('--profiles <list>', 'profiles to compare, comma-separated (default: vllm-default,kvmgr-default)', (v) => v.split(',').map((s) => s.trim()))
    .option('--workers <n>', 'worker threads (default: CPU cores)', (v) => parsePositiveInt('--workers', v))
    .option('--out <dir>', 'output directory for sweep.json and sweep.html (default: kvmgr-sweep)')
    .action(async (opts, cmd: Command) => {
      const { runSweepCommand } = await import('./sweep.js');
      await runSweepCommand(opts, cmd);
    });

  const predict = program.command('predict').description('Output-length predictors.');
  predict
    .command('eval')
    .description('Prequential evaluation (predict, then learn, in arrival order): MAE, within-10%, Kendall τ, p90 coverage, latency.')
    .requiredOption('--trace <file>', 'Mooncake JSONL or Azure CSV trace')
    .addOption(new Option('--predictor <name>', "predictor name, or 'all' (default: all)"))
    .option('--limit <n>', 'first N requests only (default: all)', (v) => parsePositiveInt('--limit', v))
    .option('--json', 'print JSON instead of a table')
    .action(async (opts) => {
      const { runPredictEval } = await import('./predict.js');
      await runPredictEval(opts);
    });

  const eviction = program.command('eviction').description('Eviction policies on block traces.');
  eviction
    .command('eval')
    .description(
      `Block hit ratio of every eviction policy (${EVICTION_POLICY_NAMES.filter((n) => n !== 'belady').join(', ')}) and Belady (offline MIN, the upper bound) per cache capacity, with prefix semantics; writes eviction.json and eviction.html.`,
    )
    .option('--trace <file>', 'block trace: Mooncake JSONL with hash_ids per request (default: the bundled Mooncake conversation sample, 3,000 requests)')
    .option('--capacities <list>', 'cache sizes in blocks, comma-separated (default: 1000,3000,10000,30000)', (v) => parsePositiveIntList('--capacities', v))
    .option('--policies <list>', `policies, comma-separated, any of ${EVICTION_POLICY_NAMES.join(', ')} (default: all)`, (v) =>
      v.split(',').map((s) => s.trim()),
    )
    .option('--limit <n>', 'first N requests only (default: all)', (v) => parsePositiveInt('--limit', v))
    .option('--json', 'print JSON instead of tables (writes no files)')
    .option('--out <dir>', 'output directory for eviction.json and eviction.html (default: kvmgr-eviction)')
    .option('--no-progress', 'do not draw the progress bar (it goes to stderr, and only on a terminal)')
    .action(async (opts) => {
      const { runEvictionEval } = await import('./eviction.js');
      await runEvictionEval(opts);
    });

  const ir = program.command('ir').description('Scheduler IR tools.');
  ir.command('opt')
    .description('Run a pass pipeline over a recorded scheduler state (JSON IR), like mlir-opt.')
    .argument('<state>', 'file with one scheduler state in the IR text form')
    .requiredOption('--pass-pipeline <pipeline>', "textual pipeline, e.g. 'sched.step(fcfs,chunked-prefill{budget=8192})'")
    .option('--print-ir-after-all', 'print the IR after every pass')
    .option('--timing', 'print per-pass timing')
    .option('--pass-statistics', 'print per-pass statistics')
    .option('--verify', 'run the verifier after every pass')
    .action(async (state: string, opts) => {
      const { runIrOpt } = await import('./ir.js');
      await runIrOpt(state, opts);
    });

  return program;
}

/** Converts a `--slo-*` value (validated by the flag parser) to ms. */
export function sloMs(flag: string, value: string): number {
  return parseDurationMs(flag, value);
}
