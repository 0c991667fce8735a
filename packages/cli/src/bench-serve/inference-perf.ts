/**
 * inference-perf's config YAML as a {@link Workload}.
 *
 * - Data types: `shared_prefix` (groups × prompts per group, system prompt + question; lengths a
 *   number or a distribution), `random` / `synthetic` (lengths from `input_distribution` /
 *   `output_distribution`, or from `data.trace`'s Azure rows), `mock` (inference-perf's
 *   `"1 2 3 <i>"` / `"mock prompt <i>"` texts), `shareGPT` (a local JSON / JSONL file of
 *   `{conversations: [{from, value}, …]}` at `data.path`: the first turn is the prompt text, the
 *   second's token count the output length, filtered by the distributions' min / max). Token
 *   ids come from seeded PRNGs; distributions are `normal` (clipped to [min, max]), `lognormal`,
 *   `uniform` or `fixed`, rounded.
 * - Load types: `constant` (evenly spaced), `poisson` (exponential gaps), `concurrent` (closed
 *   loop, `num_requests` at `concurrency_level`), `trace_replay` (send times from `load.trace`'s
 *   Azure timestamps, relative to its first row; each stage replays the trace from its start,
 *   `data.trace`'s row count requests when given, else `rate × duration`, at most the trace's
 *   rows). Stages run one after the other with `load.interval` s between them.
 * - `api.type` `completion` / `chat`, `api.streaming`, SLOs from `api.headers` (`x-slo-ttft-ms`,
 *   `x-slo-tpot-ms`, or the names and unit of `slo_ttft_header` / `slo_tpot_header` / `slo_unit`).
 *
 * Trace and dataset paths are read as inference-perf reads them (relative to the working
 * directory), then relative to the config file's folder.
 *
 * @see kubernetes-sigs/inference-perf (inference_perf/config/{datagen,loadgen}/config.py,
 *   datagen/synthetic/*, datagen/dataset/hf_sharegpt_datagen.py, loadgen/load_timer.py,
 *   utils/trace_reader.py)
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { encodeText } from '@kvmgr/adapter-vllm';
import { KvmgrError, type Rng, configIssuePath, createRng, parseYamlText } from '@kvmgr/core';
import { loadAzureTrace } from '@kvmgr/sim';
import { z } from 'zod';
import { type BenchRequest, type BenchStage, type Workload, blockTokens } from './workload.js';

const distribution = z
  .object({
    min: z.number().int().nonnegative().default(10),
    max: z.number().int().positive().default(1024),
    mean: z.number().nonnegative().default(512),
    std_dev: z.number().nonnegative().default(200),
    variance: z.number().nonnegative().nullish(),
    type: z.enum(['normal', 'lognormal', 'uniform', 'fixed']).default('normal'),
  })
  .passthrough();
type Distribution = z.infer<typeof distribution>;
const length = z.union([z.number().int().positive(), distribution]);

const sharedPrefix = z
  .object({
    num_groups: z.number().int().positive().optional(),
    num_unique_system_prompts: z.number().int().positive().optional(),
    num_prompts_per_group: z.number().int().positive().optional(),
    num_users_per_system_prompt: z.number().int().positive().optional(),
    system_prompt_len: length.default(100),
    question_len: length.default(50),
    output_len: length.default(50),
  })
  .passthrough();

const traceConfig = z.object({ file: z.string().min(1), format: z.literal('AzurePublicDataset').default('AzurePublicDataset') }).passthrough();

const stage = z.object({ rate: z.number().positive().optional(), duration: z.number().positive().optional(), num_requests: z.number().int().positive().optional(), concurrency_level: z.number().int().positive().optional() }).passthrough();

const DATA_TYPES = ['shared_prefix', 'random', 'synthetic', 'mock', 'shareGPT'] as const;
const LOAD_TYPES = ['constant', 'poisson', 'concurrent', 'trace_replay'] as const;

const schema = z
  .object({
    api: z
      .object({
        type: z.enum(['completion', 'chat']).default('completion'),
        // inference-perf's default: not streamed (no TTFT / ITL then)
        streaming: z.boolean().default(false),
        headers: z.record(z.string(), z.union([z.string(), z.number()])).nullish(),
        slo_unit: z.enum(['s', 'ms', 'us']).nullish(),
        slo_ttft_header: z.string().nullish(),
        slo_tpot_header: z.string().nullish(),
      })
      .passthrough()
      .default({ type: 'completion', streaming: false }),
    data: z
      .object({
        type: z.enum(DATA_TYPES).default('mock'),
        path: z.string().nullish(),
        input_distribution: distribution.nullish(),
        output_distribution: distribution.nullish(),
        shared_prefix: sharedPrefix.nullish(),
        trace: traceConfig.nullish(),
      })
      .passthrough()
      .default({ type: 'mock' }),
    load: z
      .object({
        type: z.enum(LOAD_TYPES).default('constant'),
        interval: z.number().nonnegative().default(1),
        stages: z.array(stage).min(1),
        trace: traceConfig.nullish(),
      })
      .passthrough(),
    server: z.object({ base_url: z.string().optional(), model_name: z.string().optional() }).passthrough().nullish(),
  })
  .passthrough();

/** What an inference-perf config names besides the workload. */
export interface InferencePerfWorkload {
  readonly workload: Workload;
  /** `server.base_url`, when given. */
  readonly baseUrl?: string;
  /** `server.model_name`, when given. */
  readonly modelName?: string;
}

function bad(file: string, message: string): KvmgrError {
  return new KvmgrError('KVMGR_BAD_CONFIG', `${file}: ${message}`);
}

function gaussian(rng: Rng): number {
  // Box–Muller from two uniforms of the seeded stream.
  const u = Math.max(rng.next(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.next());
}

/** One length from an inference-perf distribution (its `generate_distribution`), rounded and clipped to [min, max]. */
export function sampleLength(rng: Rng, d: Distribution): number {
  const sd = d.variance != null ? Math.sqrt(d.variance) : d.std_dev;
  let x: number;
  if (d.type === 'fixed') return Math.round(d.mean);
  if (d.type === 'uniform') x = d.min + rng.next() * (d.max - d.min);
  else if (d.type === 'lognormal') {
    const shifted = d.mean - d.min > 0 ? d.mean - d.min : 1;
    const s2 = Math.log(1 + (sd / shifted) ** 2);
    x = Math.exp(Math.log(shifted) - s2 / 2 + Math.sqrt(s2) * gaussian(rng)) + d.min;
  } else x = d.mean + sd * gaussian(rng);
  return Math.max(1, Math.round(Math.min(d.max, Math.max(d.min, x))));
}

function lengthOf(rng: Rng, l: z.infer<typeof length>): number {
  return typeof l === 'number' ? l : sampleLength(rng, l);
}

/** A path as inference-perf reads it (working directory), else relative to the config file. */
function dataPath(file: string, configFile: string): string {
  if (isAbsolute(file) || existsSync(file)) return file;
  const beside = resolve(dirname(configFile), file);
  return existsSync(beside) ? beside : file;
}

interface Prompt {
  readonly len: number;
  readonly out: number;
  readonly tokens: () => readonly number[] | string;
}

/**
 * ShareGPT conversations of a local JSON array or JSONL file: the first turn's text and the
 * second turn's token count, dropping conversations under 2 turns or outside the distributions'
 * [min, max] (as inference-perf's `HFShareGPTDataGenerator`).
 */
function shareGptPrompts(path: string, file: string, inDist: Distribution | null | undefined, outDist: Distribution | null | undefined): Prompt[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw bad(file, `data.path ${path}: cannot read the file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let rows: unknown[];
  try {
    const t = text.trimStart();
    rows = t.startsWith('[') ? (JSON.parse(t) as unknown[]) : t.split('\n').flatMap((l) => (l.trim() === '' ? [] : [JSON.parse(l) as unknown]));
  } catch (e) {
    throw bad(file, `data.path ${path}: not a JSON array or JSON lines (${(e as Error).message})`);
  }
  const turn = (c: unknown): string | undefined => {
    const o = typeof c === 'string' ? (JSON.parse(c) as unknown) : c;
    const v = (o as { value?: unknown } | null)?.value;
    return typeof v === 'string' ? v : undefined;
  };
  const out: Prompt[] = [];
  for (const row of rows) {
    const conv = (row as { conversations?: unknown } | null)?.conversations;
    if (!Array.isArray(conv) || conv.length < 2) continue;
    const prompt = turn(conv[0]);
    const completion = turn(conv[1]);
    if (!prompt || completion === undefined) continue;
    const len = encodeText(prompt).length + 1;
    const outLen = encodeText(completion).length;
    if (inDist && (len < inDist.min || len > inDist.max)) continue;
    if (outDist && (outLen < outDist.min || outLen > outDist.max)) continue;
    if (outLen < 1) continue;
    out.push({ len, out: outLen, tokens: () => prompt });
  }
  if (out.length === 0) throw bad(file, `data.path ${path}: no usable conversation (expected {"conversations": [{"from": "human", "value": …}, {"from": "gpt", "value": …}]} with 2+ turns)`);
  return out;
}

/** Rows of an Azure trace (`TIMESTAMP,ContextTokens,GeneratedTokens`): send time (s after the first row) and lengths. */
function azureRows(t: z.infer<typeof traceConfig>, key: string, file: string): Array<{ atS: number; len: number; out: number }> {
  const path = dataPath(t.file, file);
  if (!existsSync(path)) throw bad(file, `${key}.file ${t.file}: no such file`);
  const trace = loadAzureTrace(path);
  const t0 = trace.requests[0]?.arrivalUs ?? 0;
  return trace.requests.map((r) => ({ atS: (r.arrivalUs - t0) / 1e6, len: r.promptTokens, out: Math.max(1, r.outputTokens) }));
}

function sloFromHeaders(api: z.infer<typeof schema>['api']): { ttftMs?: number; tpotMs?: number } {
  const unit = api.slo_unit ?? 'ms';
  const toMs = unit === 's' ? 1000 : unit === 'us' ? 0.001 : 1;
  const headers = new Map(Object.entries(api.headers ?? {}).map(([k, v]) => [k.toLowerCase(), Number(v)]));
  const ttft = headers.get((api.slo_ttft_header ?? `x-slo-ttft-${unit}`).toLowerCase());
  const tpot = headers.get((api.slo_tpot_header ?? `x-slo-tpot-${unit}`).toLowerCase());
  return {
    ...(ttft !== undefined && ttft > 0 ? { ttftMs: ttft * toMs } : {}),
    ...(tpot !== undefined && tpot > 0 ? { tpotMs: tpot * toMs } : {}),
  };
}

/**
 * Reads an inference-perf config.
 *
 * @param text - the YAML.
 * @param file - its name, for messages.
 * @param seed - seed of token ids, lengths and Poisson gaps.
 * @throws KvmgrError `KVMGR_BAD_CONFIG` naming the file and the key (unsupported data or load
 *   types, stages without rate and duration, or without `num_requests` and `concurrency_level`).
 */
export function readInferencePerfConfig(text: string, file: string, seed: number): InferencePerfWorkload {
  const raw = parseYamlText(text, file);
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    // validateConfig's message plus what this reader supports: the usual cause is an inference-perf feature it lacks.
    const issue = parsed.error.issues[0];
    throw bad(file, `${configIssuePath(issue)}: ${issue?.message ?? 'invalid'} (supported: data.type ${DATA_TYPES.join(' | ')}, load.type ${LOAD_TYPES.join(' | ')})`);
  }
  const cfg = parsed.data;
  const rng = createRng(seed);
  const inDist = cfg.data.input_distribution ?? distribution.parse({});
  const outDist = cfg.data.output_distribution ?? distribution.parse({});
  // A fixed list of prompts, cycled (shared_prefix, shareGPT, data.trace); else one new prompt per request.
  let prompts: Prompt[] | undefined;
  if (cfg.data.type === 'shared_prefix') {
    const sp = cfg.data.shared_prefix ?? sharedPrefix.parse({});
    const groups = sp.num_groups ?? sp.num_unique_system_prompts ?? 10;
    const perGroup = sp.num_prompts_per_group ?? sp.num_users_per_system_prompt ?? 10;
    const systemLens = Array.from({ length: groups }, () => lengthOf(rng, sp.system_prompt_len));
    const order: number[] = [];
    for (let i = 0; i < groups * perGroup; i++) order.push(i);
    createRng(seed).shuffle(order);
    prompts = order.map((k) => {
      const g = Math.floor(k / perGroup);
      const sys = systemLens[g] as number;
      const q = lengthOf(rng, sp.question_len);
      return { len: sys + q, out: lengthOf(rng, sp.output_len), tokens: () => [...blockTokens(seed, g, sys), ...blockTokens(seed, 0x4000_0000 + k, q)] };
    });
  } else if (cfg.data.type === 'shareGPT') {
    if (!cfg.data.path) throw bad(file, 'data.path: shareGPT needs a local dataset file (downloading from Hugging Face is not supported)');
    prompts = shareGptPrompts(dataPath(cfg.data.path, file), file, cfg.data.input_distribution, cfg.data.output_distribution);
  } else if ((cfg.data.type === 'random' || cfg.data.type === 'synthetic') && cfg.data.trace) {
    prompts = azureRows(cfg.data.trace, 'data.trace', file).map((r, k) => ({ len: r.len, out: r.out, tokens: () => blockTokens(seed, 0x6000_0000 + k, r.len) }));
  }
  const nextPrompt = (k: number): Prompt => {
    if (prompts !== undefined) return prompts[k % prompts.length] as Prompt;
    if (cfg.data.type === 'mock') {
      const i = k + 1;
      // inference-perf's mock texts; their length is what the server counts
      return cfg.api.type === 'chat' ? { len: 0, out: 16, tokens: () => `mock prompt ${i}` } : { len: 0, out: 16, tokens: () => `1 2 3 ${i}` };
    }
    const len = sampleLength(rng, inDist);
    return { len, out: sampleLength(rng, outDist), tokens: () => blockTokens(seed, 0x6000_0000 + k, len) };
  };
  const traceTimes = cfg.load.type === 'trace_replay' ? (cfg.load.trace ? azureRows(cfg.load.trace, 'load.trace', file).map((r) => r.atS) : undefined) : undefined;
  if (cfg.load.type === 'trace_replay' && traceTimes === undefined) throw bad(file, 'load.trace: trace_replay needs load.trace.file (an AzurePublicDataset CSV)');

  const stages: BenchStage[] = [];
  const requests: BenchRequest[] = [];
  let k = 0;
  cfg.load.stages.forEach((s, si) => {
    let times: number[];
    if (cfg.load.type === 'concurrent') {
      if (s.num_requests === undefined || s.concurrency_level === undefined) throw bad(file, `load.stages.${si}: concurrent stages need num_requests and concurrency_level`);
      times = new Array<number>(s.num_requests).fill(0);
      stages.push({ rate: 0, concurrency: s.concurrency_level });
    } else {
      if (s.rate === undefined || s.duration === undefined) throw bad(file, `load.stages.${si}: ${cfg.load.type} stages need rate and duration`);
      times = [];
      if (traceTimes !== undefined) {
        const n = Math.min(traceTimes.length, cfg.data.trace && prompts !== undefined ? prompts.length : Math.floor(s.rate * s.duration));
        times = traceTimes.slice(0, n);
      } else {
        const n = Math.floor(s.rate * s.duration);
        let t = 0;
        for (let i = 0; i < n; i++) {
          t = cfg.load.type === 'constant' ? i / s.rate : t + rng.exponential(1 / s.rate);
          times.push(t);
        }
      }
      stages.push({ rate: s.rate });
    }
    for (const atS of times) {
      const p = nextPrompt(k);
      requests.push({ id: `req-${k}`, stage: si, atS, promptTokens: p.len, outputTokens: p.out, prompt: p.tokens });
      k++;
    }
  });
  const slo = sloFromHeaders(cfg.api);
  return {
    workload: {
      name: file.split(/[\\/]/).pop() ?? file,
      requests,
      stages,
      stageIntervalS: cfg.load.interval,
      api: cfg.api.type,
      stream: cfg.api.streaming,
      ...(slo.ttftMs === undefined ? {} : { sloTtftMs: slo.ttftMs }),
      ...(slo.tpotMs === undefined ? {} : { sloTpotMs: slo.tpotMs }),
      inferencePerfConfig: raw as Record<string, unknown>,
    },
    ...(cfg.server?.base_url ? { baseUrl: cfg.server.base_url } : {}),
    ...(cfg.server?.model_name ? { modelName: cfg.server.model_name } : {}),
  };
}
