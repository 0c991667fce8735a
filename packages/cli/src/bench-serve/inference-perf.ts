/**
 * inference-perf's config YAML as a {@link Workload}: data types `shared_prefix`, `random` and
 * `synthetic` (token ids drawn from seeded PRNGs; lengths from `input_distribution` /
 * `output_distribution`: a normal clipped to [min, max]), load types `constant` (evenly spaced),
 * `poisson` (exponential gaps), `concurrent` (closed loop, `num_requests` at `concurrency_level`);
 * stages run one after the other with `load.interval` s between them; SLOs from `api.headers`
 * (`x-slo-ttft-ms`, `x-slo-tpot-ms`, or the names and unit of `slo_ttft_header` / `slo_unit`).
 *
 * @see kubernetes-sigs/inference-perf (inference_perf/config.py, datagen/, loadgen/load_timer.py)
 */
import { KvmgrError, createRng } from '@kvmgr/core';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { type BenchRequest, type BenchStage, type Workload, blockTokens } from './workload.js';

const distribution = z.object({ min: z.number().int().positive().default(10), max: z.number().int().positive().default(1024), mean: z.number().positive().default(512), std_dev: z.number().nonnegative().default(200) }).passthrough();

const sharedPrefix = z
  .object({
    num_groups: z.number().int().positive().optional(),
    num_unique_system_prompts: z.number().int().positive().optional(),
    num_prompts_per_group: z.number().int().positive().optional(),
    num_users_per_system_prompt: z.number().int().positive().optional(),
    system_prompt_len: z.number().int().positive().default(100),
    question_len: z.number().int().positive().default(50),
    output_len: z.number().int().positive().default(50),
  })
  .passthrough();

const stage = z.object({ rate: z.number().positive().optional(), duration: z.number().positive().optional(), num_requests: z.number().int().positive().optional(), concurrency_level: z.number().int().positive().optional() }).passthrough();

const schema = z
  .object({
    api: z
      .object({
        type: z.enum(['completion', 'chat']).default('completion'),
        streaming: z.boolean().default(true),
        headers: z.record(z.string(), z.union([z.string(), z.number()])).nullish(),
        slo_unit: z.enum(['s', 'ms', 'us']).nullish(),
        slo_ttft_header: z.string().nullish(),
        slo_tpot_header: z.string().nullish(),
      })
      .passthrough()
      .default({ type: 'completion', streaming: true }),
    data: z
      .object({
        type: z.enum(['shared_prefix', 'random', 'synthetic']),
        input_distribution: distribution.nullish(),
        output_distribution: distribution.nullish(),
        shared_prefix: sharedPrefix.nullish(),
      })
      .passthrough(),
    load: z
      .object({
        type: z.enum(['constant', 'poisson', 'concurrent']).default('constant'),
        interval: z.number().nonnegative().default(1),
        stages: z.array(stage).min(1),
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

function clippedNormal(rng: ReturnType<typeof createRng>, d: z.infer<typeof distribution>): number {
  // Box–Muller from two uniforms of the seeded stream.
  const u = Math.max(rng.next(), 1e-12);
  const v = rng.next();
  const x = d.mean + d.std_dev * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  return Math.round(Math.min(d.max, Math.max(d.min, x)));
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
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (e) {
    throw bad(file, `not YAML (${(e as Error).message.split('\n')[0]})`);
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw bad(file, `${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'} (supported: data.type shared_prefix | random | synthetic, load.type constant | poisson | concurrent)`);
  }
  const cfg = parsed.data;
  const rng = createRng(seed);
  // Prompts: [tokens builder, prompt length, output length] per distinct prompt, cycled.
  const prompts: Array<{ len: number; out: number; tokens: () => number[] }> = [];
  if (cfg.data.type === 'shared_prefix') {
    const sp = cfg.data.shared_prefix ?? sharedPrefix.parse({});
    const groups = sp.num_groups ?? sp.num_unique_system_prompts ?? 10;
    const perGroup = sp.num_prompts_per_group ?? sp.num_users_per_system_prompt ?? 10;
    const order: number[] = [];
    for (let i = 0; i < groups * perGroup; i++) order.push(i);
    createRng(seed).shuffle(order);
    for (const k of order) {
      const g = Math.floor(k / perGroup);
      prompts.push({
        len: sp.system_prompt_len + sp.question_len,
        out: sp.output_len,
        tokens: () => [...blockTokens(seed, g, sp.system_prompt_len), ...blockTokens(seed, 0x4000_0000 + k, sp.question_len)],
      });
    }
  }
  const inDist = cfg.data.input_distribution ?? distribution.parse({});
  const outDist = cfg.data.output_distribution ?? distribution.parse({});
  const randomPrompt = (k: number) => {
    const len = clippedNormal(rng, inDist);
    return { len, out: clippedNormal(rng, outDist), tokens: () => blockTokens(seed, 0x6000_0000 + k, len) };
  };

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
      const n = Math.floor(s.rate * s.duration);
      times = [];
      let t = 0;
      for (let i = 0; i < n; i++) {
        t = cfg.load.type === 'constant' ? i / s.rate : t + rng.exponential(1 / s.rate);
        times.push(t);
      }
      stages.push({ rate: s.rate });
    }
    for (const atS of times) {
      const p = cfg.data.type === 'shared_prefix' ? (prompts[k % prompts.length] as (typeof prompts)[number]) : randomPrompt(k);
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
      ...(slo.ttftMs === undefined ? {} : { sloTtftMs: slo.ttftMs }),
      ...(slo.tpotMs === undefined ? {} : { sloTpotMs: slo.tpotMs }),
      inferencePerfConfig: raw as Record<string, unknown>,
    },
    ...(cfg.server?.base_url ? { baseUrl: cfg.server.base_url } : {}),
    ...(cfg.server?.model_name ? { modelName: cfg.server.model_name } : {}),
  };
}
