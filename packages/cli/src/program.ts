/**
 * The `kvmgr` command tree (commander). Each command validates its flags, then calls a thin
 * action over the packages; errors become one line on stderr and a non-zero exit.
 */
import { createRequire } from 'node:module';
import { EVICTION_POLICY_NAMES } from '@kvmgr/eviction';
import { Command, Option } from 'commander';
import { DEFAULTS } from './defaults.js';
import { parseDurationMs, parseFraction, parseNonNegativeInt, parseNumberList, parsePositiveInt, parsePositiveIntList, parsePositiveNumber } from './parse.js';

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
    .option('--request-rate <r>', "arrival rate in requests/s instead of --rate-scale: a timestamped trace is scaled to this mean rate; a length-only CSV gets Poisson arrivals at r/s (default: the trace's timestamps; 1 request/s for a length-only CSV)", (v) => parsePositiveNumber('--request-rate', v))
    .option('--slo-ttft <duration>', `time-to-first-token SLO, with a unit: 500ms, 2s (default: ${DEFAULTS.sloTtft})`, (v) => {
      parseDurationMs('--slo-ttft', v);
      return v;
    })
    .option('--slo-tpot <duration>', `time-per-output-token SLO, with a unit: 50ms (default: ${DEFAULTS.sloTpot})`, (v) => {
      parseDurationMs('--slo-tpot', v);
      return v;
    })
    .option('--seed <n>', `seed of every random choice (same seed, same results) (default: ${DEFAULTS.seed})`, (v) => parseNonNegativeInt('--seed', v))
    .option('--max-num-batched-tokens <n>', "token budget per engine step, as vLLM's flag; caps every pipeline's chunked-prefill budget (default: the profile's, 8192 for vLLM)", (v) => parsePositiveInt('--max-num-batched-tokens', v))
    .option('--max-num-seqs <n>', "sequences per engine step, as vLLM's flag (default: the profile's, 1024 for vLLM)", (v) => parsePositiveInt('--max-num-seqs', v))
    .option('--gpu-memory-utilization <x>', "fraction of GPU memory for weights and KV cache, in (0, 1], as vLLM's flag (default: the profile's, 0.9)", (v) => parseFraction('--gpu-memory-utilization', v))
    .option('--block-size <n>', "tokens per KV block, as vLLM's flag: 8, 16, 32, 64 or 128 (default: the profile's, 16 for vLLM)", (v) => parsePositiveInt('--block-size', v))
    .addOption(
      new Option('--prefix-index <kind>', "engine prefix index: 'hash-map' (vLLM-style block hashes, per-block free queue) or 'radix' (@kvmgr/prefix-cache radix tree, leaf-first eviction) (default: radix)").choices(['hash-map', 'radix']),
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
    .option('--workers <n>', 'worker threads, at most one per run and per CPU core (default: min(runs, CPU cores))', (v) => parsePositiveInt('--workers', v))
    .option('--force-workers', 'allow --workers above the CPU cores')
    .option('--out <dir>', 'output directory for sweep.json and sweep.html (default: kvmgr-sweep)')
    .action(async (opts, cmd: Command) => {
      const { runSweepCommand } = await import('./sweep.js');
      await runSweepCommand(opts, cmd);
    });

  const experiment = program.command('experiment').description('Reproducible experiments: workloads × cluster setups × configurations over seeds, with verdicts (docs/experiments).');
  experiment
    .command('run')
    .description(
      'Run an experiment file (YAML: workloads, setups, configurations, metrics, hypotheses, targets; see experiments/ and docs/experiments) in the simulator\'s worker pool; prints means with 95% CIs over seeds and a verdict per hypothesis (supported / refuted / inconclusive); writes results.json, results.md (verdicts and tables in markdown), report.html and cells.jsonl (an interrupted run resumes from its finished cells). Metrics: goodput_rps, slo_attainment, throughput_rps, output_tok_per_s, ttft_p50_ms, ttft_p99_ms, tpot_p50_ms, tpot_p99_ms, e2e_p99_ms, hit_rate, preemptions, rejected, evicted_blocks, offloaded_blocks, reloaded_blocks, migration_failure_rate (failed / ended KV migrations: hot-spot prefetches and P/D transfer blocks; NaN without any), migrated_blocks, kv_utilization, jain_index, throughput_cv (output tokens/s fluctuation over time); per SLO class with @critical / @standard / @batch / @background on ttft_p50_ms, ttft_p99_ms, tpot_p99_ms, slo_attainment, goodput_rps.',
    )
    .argument('<file>', 'experiment YAML file')
    .option('--seeds <n>', "seeds per cell, 0…n−1 (default: the file's seeds, else 3)", (v) => parsePositiveInt('--seeds', v))
    .option('--workers <n>', 'worker threads, at most one per cell and per CPU core (default: min(cells, CPU cores))', (v) => parsePositiveInt('--workers', v))
    .option('--force-workers', 'allow --workers above the CPU cores')
    .option('--out <dir>', 'output directory (default: kvmgr-experiment/<name>)')
    .option('--no-progress', 'do not draw the progress bar (it goes to stderr, and only on a terminal)')
    .action(async (file: string, opts) => {
      const { runExperimentCommand } = await import('./experiment/run.js');
      await runExperimentCommand(file, opts);
    });

  program
    .command('fidelity')
    .description(
      'Replay real vLLM runs (a folder in the shared/validation layout) through the simulator: simulated vs measured TTFT / ITL / E2E per experiment, median errors, and a two-fold cross-validation of the roofline calibration; writes fidelity.json and fidelity.html.',
    )
    .requiredOption('--validation <dir>', 'validation folder: experiments.csv, measured_latency.csv, model_configs/ (e.g. ../shared/validation)')
    .addOption(new Option('--latency <backend>', "latency backend: auto (best validated), roofline or blis (default: auto)").choices(['auto', 'roofline', 'blis']))
    .option('--json', 'print JSON instead of tables (writes no files)')
    .option('--out <dir>', 'output directory for fidelity.json and fidelity.html (default: kvmgr-fidelity)')
    .option('--no-cv', 'skip the cross-validation of the roofline calibration (it replays each fold about 20 times)')
    .option('--cv-rounds <n>', 'coordinate-descent rounds of each fold\'s fit (default: 2)', (v) => parsePositiveInt('--cv-rounds', v))
    .action(async (opts) => {
      const { runFidelityCommand } = await import('./fidelity.js');
      await runFidelityCommand(opts);
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
    .option('--suite', 'run every policy over the workload suite (the Mooncake trace, or --trace, plus generated agentic, RAG, long-document, scan and phase-shift traces); prints hit ratio and share of Belady per shape')
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

  const metrics = program.command('metrics').description('Engine metrics.');
  metrics
    .command('scrape')
    .description("Scrape an engine's Prometheus /metrics and print the snapshot kvmgr sees (KV utilization, queue, prefix cache); exit 2 when the URL cannot be read as engine metrics.")
    .argument('<url>', 'metrics URL, e.g. http://127.0.0.1:8000/metrics')
    .addOption(new Option('--engine <engine>', 'engine whose metric names to read (default: auto, by metric-name prefix)').choices(['auto', 'vllm', 'sglang', 'tgi', 'lmdeploy']))
    .option('--json', 'print the snapshot as one JSON line')
    .option('--watch <interval>', 'scrape again every interval, e.g. 2s, until interrupted (default: once)')
    .option('--timeout <duration>', 'per-request timeout (default: 5s)')
    .option('--token-capacity <tokens>', 'TGI only: KV capacity in tokens (--max-batch-total-tokens), to estimate KV utilization')
    .action(async (url: string, opts) => {
      const { runMetricsScrape } = await import('./metrics.js');
      const code = await runMetricsScrape(url, opts, { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) });
      if (code !== 0) process.exitCode = code;
    });

  const events = program.command('events').description('KV events from engines (vLLM ZMQ + msgpack).');
  events
    .command('tail')
    .description('Subscribe to a vLLM KV-event publisher and print decoded events, one per line; gaps are repaired by replay when --replay is given; counters and rates go to stderr.')
    .requiredOption('--endpoint <endpoint>', "publisher endpoint, e.g. tcp://10.0.0.5:5557 (vLLM's --kv-events-config endpoint)")
    .option('--replay <endpoint>', 'replay ROUTER endpoint, e.g. tcp://10.0.0.5:5558 (default: none; gaps are counted and skipped)')
    .option('--topic <topic>', 'topic prefix to subscribe to (default: all)')
    .option('--json', 'print JSON lines (hashes as decimal strings) instead of text')
    .option('--count <n>', 'exit after N events (default: run until interrupted)', (v) => parsePositiveInt('--count', v))
    .option('--duration <duration>', 'exit after this long, with a unit: 10s, 2m (default: run until interrupted)', (v) => {
      parseDurationMs('--duration', v);
      return v;
    })
    .option('--stats-interval <duration>', 'how often counters and rates go to stderr (default: 5s)', (v) => {
      parseDurationMs('--stats-interval', v);
      return v;
    })
    .action(async (opts) => {
      const { runEventsTail } = await import('./events.js');
      await runEventsTail(opts);
    });

  program
    .command('list')
    .description('List what the other commands accept, one line each: models, gpus, profiles, passes, presets, scorers (with the router weight letters pa, qd, kv, ...), policies, predictors.')
    .argument('<what>', 'models | gpus | profiles | passes | presets | scorers | policies | predictors')
    .option('--json', 'print the rows as JSON')
    .action(async (what: string, opts: { json?: boolean }) => {
      const { runList } = await import('./list.js');
      runList(what, opts);
    });

  program
    .command('engine')
    .description("Run a vLLM-compatible engine server driven by kvmgr's engine core on the wall clock (OpenAI API, /metrics with vLLM names, KV events over ZMQ); --instances N starts a local fleet.")
    .option('--model <name>', `modelled model (default: ${DEFAULTS.model})`)
    .option('--served-model-name <name>', "name the API answers to (default: the model's HF id)")
    .option('--tokenizer <name>', 'tokenizer of prompts, chat and output text: llama3, llama3.1, llama3.2, qwen2, qwen2.5, qwen3 (default: the one --model implies, else llama3.1)')
    .option('--gpu <name>', `modelled GPU (default: ${DEFAULTS.gpu})`)
    .option('--tp <n>', 'tensor-parallel size (default: 1)', (v) => parsePositiveInt('--tp', v))
    .option('--profile <name>', 'engine profile: block size, budgets, eviction, scheduler (default: vllm-default)')
    .option('--host <host>', 'address to listen on (default: 127.0.0.1)')
    .option('--port <n>', 'port (default: 8000)', (v) => parseNonNegativeInt('--port', v))
    .option('--time-scale <x>', 'model time per wall time, > 0 (10 = steps take a tenth of the GPU time) (default: 1)', (v) => parsePositiveNumber('--time-scale', v))
    .option('--kv-events-config <json>', 'vLLM\'s KV-event config, e.g. \'{"enable_kv_cache_events":true,"publisher":"zmq","endpoint":"tcp://*:5557","replay_endpoint":"tcp://*:5558"}\' (default: off)')
    .option('--num-gpu-blocks <n>', 'KV blocks (default: from the memory model of model, GPU and TP)', (v) => parsePositiveInt('--num-gpu-blocks', v))
    .option('--max-model-len <n>', 'context length in tokens (default: 131072, capped by the KV pool)', (v) => parsePositiveInt('--max-model-len', v))
    .option('--seed <n>', 'seed of the generated tokens and of --fail-rate (default: 0)', (v) => parseNonNegativeInt('--seed', v))
    .option('--echo', 'output tokens repeat the prompt instead of seeded random tokens')
    .option('--max-waiting <n>', 'waiting requests beyond which new ones get 429 (default: unbounded, as vLLM)', (v) => parseNonNegativeInt('--max-waiting', v))
    .option('--fail-rate <fraction>', 'fault injection: fraction of requests answered 500 (default: 0)', (v) => parseFraction('--fail-rate', v))
    .option('--stall-ms <ms>', 'fault injection: wall ms added to every step (default: 0)', (v) => parseNonNegativeInt('--stall-ms', v))
    .option('--die-after <n>', 'fault injection: the N-th request kills the process mid-stream (exit 1)', (v) => parsePositiveInt('--die-after', v))
    .addOption(new Option('--role <role>', 'P/D role for kv_transfer_params (default: both)').choices(['both', 'prefill', 'decode']))
    .option('--instances <n>', 'start a local fleet of N servers as child processes (default: 1)', (v) => parsePositiveInt('--instances', v))
    .option('--base-port <n>', 'first port of the fleet; instance i listens on base + i and shifts KV-event ports by i (default: --port)', (v) => parseNonNegativeInt('--base-port', v))
    .option('--log-level <level>', 'pino level of the JSON logs on stdout (default: info)')
    .action(async (opts) => {
      const { runEngine } = await import('./engine.js');
      await runEngine(opts);
    });

  program
    .command('serve')
    .description('Run the KV- and SLO-aware OpenAI-compatible gateway in front of engine endpoints (vLLM, SGLang, TGI, LMDeploy, kvmgr engine servers); flags override --config.')
    .option('--config <file>', 'gateway YAML: server, model, endpoints, routing (pa:3,qd:2,kv:2 or llm-d EndpointPickerConfig plugins), admission, health, scrape (see docs/cli/serve.md)')
    .option('--endpoint <url>', 'engine base URL, e.g. http://10.0.0.5:8000; repeat for more (replaces the endpoints of --config)', (v: string, prev: string[] | undefined) => [...(prev ?? []), v])
    .option('--port <n>', 'port to listen on (default: 8080; 0 = any free port)', (v) => parseNonNegativeInt('--port', v))
    .option('--host <host>', 'address to listen on (default: 127.0.0.1)')
    .option('--routing <config>', "routing: a preset (llm-d-default, kvmgr-default, round-robin, random) or weights such as 'pa:3,qd:2,kv:2' (default: llm-d-default)")
    .option('--model <name>', 'served model name: the namespace of block keys (default: none)')
    .option('--tokenizer <name>', 'tokenizer of prompt keys: llama3, llama3.1, llama3.2, qwen2, qwen2.5, qwen3 (default: the one --model implies, else llama3.1)')
    .option('--redis <url>', 'share the block index, speculative entries and in-flight load with other replicas through Redis, e.g. redis://127.0.0.1:6379; each replica keeps serving on its own state while Redis is gone (see docs/gateway-replicas.md) (default: off)')
    .option('--replicas <n>', 'start N local gateway replicas (processes) behind one port, sharing state through --redis; for demos and tests (see docs/gateway-replicas.md) (default: 1)', (v) => parsePositiveInt('--replicas', v))
    .addOption(new Option('--log-level <level>', 'log level of the JSON request log on stdout (default: info)').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']))
    .action(async (opts) => {
      const { runServe } = await import('./serve.js');
      await runServe(opts);
    });

  program
    .command('epp')
    .description("Run kvmgr's routing decision as a Gateway API Inference Extension endpoint picker: Envoy ext_proc gRPC (x-gateway-destination-endpoint + envoy.lb metadata), grpc.health.v1, Prometheus /metrics (see docs/epp.md).")
    .option('--config <file>', 'gateway YAML: model, endpoints, routing, admission, health, scrape (as kvmgr serve; server.port is not used)')
    .option('--endpoint <url>', 'engine base URL, e.g. http://10.0.0.5:8000; repeat for more (replaces the endpoints of --config)', (v: string, prev: string[] | undefined) => [...(prev ?? []), v])
    .option('--pods <file>', 'YAML/JSON list of pods ({ address: ip:port, engine, role, kvEvents, … }), re-read when it changes')
    .option('--grpc-port <n>', 'ext_proc + health gRPC port (default: 9002; 0 = any free port)', (v) => parseNonNegativeInt('--grpc-port', v))
    .option('--health-port <n>', 'also serve grpc.health.v1 alone on this port (GIE uses 9003) (default: none)', (v) => parseNonNegativeInt('--health-port', v))
    .option('--metrics-port <n>', 'HTTP /metrics port (default: 9090; 0 = any free port)', (v) => parseNonNegativeInt('--metrics-port', v))
    .option('--host <host>', 'address to listen on (default: 127.0.0.1; 0.0.0.0 in a pod)')
    .option('--routing <config>', "routing: a preset or weights such as 'pa:3,qd:2,kv:2' (default: llm-d-default)")
    .option('--model <name>', 'served model name: the namespace of block keys (default: none)')
    .option('--tokenizer <name>', 'tokenizer of prompt keys: llama3, llama3.1, llama3.2, qwen2, qwen2.5, qwen3 (default: the one --model implies, else llama3.1)')
    .addOption(new Option('--log-level <level>', 'log level of the JSON request log on stdout (default: info)').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']))
    .action(async (opts) => {
      const { runEpp } = await import('./epp.js');
      await runEpp(opts);
    });

  const durationFlag = (flag: string) => (v: string) => {
    parseDurationMs(flag, v);
    return v;
  };
  program
    .command('bench')
    .description('Load generators.')
    .command('serve')
    .description(
      "Load an OpenAI-compatible endpoint with a trace (Mooncake JSONL, Azure CSV, length-only CSV) or an inference-perf config; measures TTFT, ITL, TPOT, E2E, cached tokens and goodput from the stream; writes inference-perf's files (+ vllm bench serve's JSON) and report.html.",
    )
    .option('--target <url>', 'base URL of the OpenAI-compatible server, e.g. http://127.0.0.1:8000 (default: server.base_url of --config)')
    .option('--model <name>', 'model name to send (default: the first of the target\'s /v1/models, or server.model_name of --config)')
    .option('--trace <file>', 'trace: Mooncake JSONL (each 512-token hash_id becomes a fixed seeded block of token ids), Azure CSV or length-only CSV (default: the bundled Mooncake conversation sample, 3,000 requests)')
    .option('--config <file>', "inference-perf config YAML: data shared_prefix | random | synthetic | mock | shareGPT (local file), load constant | poisson | concurrent | trace_replay, stages, api.type / api.streaming, SLO headers in api.headers")
    .option('--lenient', 'skip malformed trace rows and count them')
    .option('--limit <n>', 'send only the first N requests (default: all)', (v) => parsePositiveInt('--limit', v))
    .option('--duration <duration>', 'stop sending after this long (wall clock), e.g. 60s, 5m; requests in flight finish (default: until the workload ends)', durationFlag('--duration'))
    .option('--rate-scale <x>', "multiply the trace's arrival rate by x (> 0) (default: 1)", (v) => parsePositiveNumber('--rate-scale', v))
    .option('--rate <r>', 'Poisson arrivals at r requests/s instead of the trace\'s timestamps (seeded)', (v) => parsePositiveNumber('--rate', v))
    .option('--concurrency <n>', 'at most n requests in flight; alone: a closed loop of n', (v) => parsePositiveInt('--concurrency', v))
    .option('--time-scale <x>', 'the target runs x times faster than the hardware it models (kvmgr engine --time-scale): send gaps are divided by x and measured times multiplied by x (default: 1)', (v) => parsePositiveNumber('--time-scale', v))
    .option('--slo-ttft <duration>', `TTFT SLO for goodput, also sent as x-slo-ttft-ms (default: the config's, else ${DEFAULTS.sloTtft})`, durationFlag('--slo-ttft'))
    .option('--slo-tpot <duration>', `TPOT SLO for goodput, also sent as x-slo-tpot-ms (default: the config's, else ${DEFAULTS.sloTpot})`, durationFlag('--slo-tpot'))
    .option('--seed <n>', `seed of token ids and arrivals (default: ${DEFAULTS.seed})`, (v) => parseNonNegativeInt('--seed', v))
    .option('--request-timeout <duration>', 'abort a request after this long (default: 10m)', durationFlag('--request-timeout'))
    .option('--max-connections <n>', 'at most n connections to the target; a request due while all are busy waits (schedule delay) (default: 1024)', (v) => parsePositiveInt('--max-connections', v))
    .addOption(new Option('--api <type>', "OpenAI API: completion (/v1/completions) or chat (/v1/chat/completions, prompts as text) (default: the config's api.type, else completion)").choices(['completion', 'chat']))
    .option('--no-stream', "send non-streamed requests (no TTFT / ITL then) (default: stream, or the config's api.streaming)")
    .addOption(new Option('--prompt-format <format>', 'token-id prompts as token-id arrays or as text of one word per token (default: tokens; chat: text)').choices(['tokens', 'text']))
    .option('--vllm-json', "also write vllm bench serve's result JSON (vllm_bench_serve.json)")
    .option('--out <dir>', 'output directory (default: kvmgr-bench)')
    .option('--no-progress', 'do not draw the progress bar (it goes to stderr, and only on a terminal)')
    .action(async (opts) => {
      const { runBenchServeCommand } = await import('./bench-serve/command.js');
      await runBenchServeCommand(opts);
    });

  program
    .command('live')
    .description(
      "The main job on a live stack: starts N engine servers (kvmgr engine child processes), runs bench serve through a round-robin gateway and through the kvmgr gateway on the same trace, and prints the side-by-side table next to the simulator's.",
    )
    .option('--trace <file>', 'trace (default: the bundled Mooncake conversation sample)')
    .option('--limit <n>', 'first N requests only (default: 300 of the bundled sample, all of a --trace)', (v) => parsePositiveInt('--limit', v))
    .option('--instances <n>', `engine servers (default: ${DEFAULTS.instances})`, (v) => parsePositiveInt('--instances', v))
    .option('--model <name>', `modelled model (default: ${DEFAULTS.model})`)
    .option('--gpu <name>', `modelled GPU (default: ${DEFAULTS.gpu})`)
    .option('--time-scale <x>', 'model time per wall time of the engine servers (default: 2)', (v) => parsePositiveNumber('--time-scale', v))
    .option('--rate-scale <x>', "multiply the trace's arrival rate by x (default: 1)", (v) => parsePositiveNumber('--rate-scale', v))
    .option('--routing <config>', 'routing of the kvmgr side (default: kvmgr-default)')
    .option('--profile <name>', 'engine profile of the kvmgr side; the round-robin side runs vllm-default, as kvmgr replay (default: kvmgr-default)')
    .option('--slo-ttft <duration>', `TTFT SLO, model time (default: ${DEFAULTS.sloTtft})`, durationFlag('--slo-ttft'))
    .option('--slo-tpot <duration>', `TPOT SLO, model time (default: ${DEFAULTS.sloTpot})`, durationFlag('--slo-tpot'))
    .option('--seed <n>', `seed (default: ${DEFAULTS.seed})`, (v) => parseNonNegativeInt('--seed', v))
    .option('--no-sim', "skip the simulator's columns")
    .addOption(new Option('--engines <where>', 'engine servers as kvmgr engine child processes, or all in this process (default: process)').choices(['process', 'in-process']))
    .option('--out <dir>', 'output directory: round-robin/ and kvmgr/ bench files, live.json, report.html (default: kvmgr-live)')
    .option('--no-progress', 'do not draw progress bars')
    .action(async (opts) => {
      const { runLiveCommand } = await import('./live.js');
      await runLiveCommand(opts);
    });

  return program;
}

/** Converts a `--slo-*` value (validated by the flag parser) to ms. */
export function sloMs(flag: string, value: string): number {
  return parseDurationMs(flag, value);
}
