/**
 * The YAML workload generator: multi-turn sessions with context accumulation (each turn's
 * prompt = previous prompt + previous answer + a new user message, sent a think time after the
 * answer), independent requests, KV-pressure bursts, embedding waves, SLO classes with shares
 * and targets, and tenants with shares. Validated with a zod schema; seeded with core's PRNG.
 *
 * @example
 * ```yaml
 * name: chat
 * seed: 1
 * duration_s: 300
 * arrival: { process: poisson, rate: 4 }
 * sessions: { share: 0.5, turns: { min: 2, max: 5 }, think_time_s: 8, system_prompts: 4, system_tokens: 600 }
 * slo_classes: [{ name: critical, share: 0.2, ttft_ms: 500, tpot_ms: 50 }, { name: standard, share: 0.8, ttft_ms: 2000, tpot_ms: 100 }]
 * tenants: [{ name: a, share: 0.7 }, { name: b, share: 0.3 }]
 * bursts: [{ at_s: 100, duration_s: 10, rate: 20, prompt_tokens: { mean: 8000 }, output_tokens: { mean: 800 } }]
 * embeddings: [{ at_s: 200, duration_s: 20, rate: 30, prompt_tokens: { mean: 512 } }]
 * ```
 */
import { type Rng, KvmgrError, type SloClass, createRng, parseYamlText, validateConfig } from '@kvmgr/core';
import { z } from 'zod';
import { generateArrivals, normalVariate } from '../traces/arrivals.js';
import type { SimRequest, Trace } from '../traces/types.js';

const lengthSchema = z
  .object({
    mean: z.number().positive(),
    cv: z.number().nonnegative().default(0.8),
    min: z.number().int().positive().default(1),
    max: z.number().int().positive().default(32768),
  })
  .strict();

const arrivalSchema = z
  .object({
    process: z.enum(['poisson', 'gamma', 'constant']).default('poisson'),
    rate: z.number().positive(),
    cv: z.number().positive().default(1),
  })
  .strict();

const waveSchema = z
  .object({
    at_s: z.number().nonnegative(),
    duration_s: z.number().positive(),
    rate: z.number().positive(),
    prompt_tokens: lengthSchema,
    output_tokens: lengthSchema.optional(),
  })
  .strict();

/** The workload schema (snake_case, as written in YAML). */
export const workloadSchema = z
  .object({
    name: z.string().min(1).default('workload'),
    seed: z.number().int().default(0),
    duration_s: z.number().positive(),
    arrival: arrivalSchema,
    single: z
      .object({ prompt_tokens: lengthSchema, output_tokens: lengthSchema })
      .strict()
      .default({ prompt_tokens: { mean: 1000, cv: 0.8, min: 1, max: 32768 }, output_tokens: { mean: 250, cv: 0.8, min: 1, max: 32768 } }),
    sessions: z
      .object({
        share: z.number().min(0).max(1),
        turns: z.object({ min: z.number().int().positive(), max: z.number().int().positive() }).strict(),
        think_time_s: z.number().nonnegative(),
        system_prompts: z.number().int().positive().default(4),
        system_tokens: z.number().int().nonnegative().default(500),
        user_tokens: lengthSchema.default({ mean: 150, cv: 0.8, min: 1, max: 32768 }),
        output_tokens: lengthSchema.default({ mean: 250, cv: 0.8, min: 1, max: 32768 }),
      })
      .strict()
      .optional(),
    bursts: z.array(waveSchema).default([]),
    embeddings: z.array(waveSchema).default([]),
    slo_classes: z
      .array(
        z
          .object({
            name: z.enum(['critical', 'standard', 'batch', 'background']),
            share: z.number().positive(),
            ttft_ms: z.number().positive().optional(),
            tpot_ms: z.number().positive().optional(),
            priority: z.number().int().optional(),
          })
          .strict(),
      )
      .default([]),
    tenants: z.array(z.object({ name: z.string().min(1), share: z.number().positive() }).strict()).default([]),
    max_tokens: z.number().int().positive().default(4096),
  })
  .strict();

/** A validated workload spec. */
export type WorkloadSpec = z.infer<typeof workloadSchema>;
type Length = z.infer<typeof lengthSchema>;

/**
 * Parses and validates a workload (YAML text or an object).
 * @throws KvmgrError `KVMGR_BAD_CONFIG` naming the field path and the problem.
 */
export function parseWorkload(input: string | unknown, name = 'workload'): WorkloadSpec {
  const spec = validateConfig(typeof input === 'string' ? parseYamlText(input, name) : input, workloadSchema, name);
  if (spec.sessions !== undefined && spec.sessions.turns.min > spec.sessions.turns.max) {
    throw new KvmgrError('KVMGR_BAD_CONFIG', `${name}: sessions.turns: min (${spec.sessions.turns.min}) must be <= max (${spec.sessions.turns.max})`);
  }
  return spec;
}

/** Log-normal length with the given mean and coefficient of variation, clipped to [min, max]. */
function sampleLength(rng: Rng, l: Length): number {
  let v = l.mean;
  if (l.cv > 0) {
    const s2 = Math.log(1 + l.cv * l.cv);
    v = Math.exp(Math.log(l.mean) - s2 / 2 + Math.sqrt(s2) * normalVariate(rng));
  }
  return Math.min(l.max, Math.max(l.min, Math.round(v)));
}

function pickShare<T extends { share: number }>(rng: Rng, items: readonly T[]): T | undefined {
  if (items.length === 0) return undefined;
  const total = items.reduce((a, b) => a + b.share, 0);
  let u = rng.next() * total;
  for (const it of items) {
    u -= it.share;
    if (u < 0) return it;
  }
  return items[items.length - 1];
}

/**
 * Generates the requests of a workload. Session turns after the first carry `previousTurn` and
 * `thinkTimeUs` (the cluster sends them after the previous answer); their `hashIds` cover prompt
 * and answer so the next turn can hit the blocks filled while decoding.
 *
 * @param spec - a spec from {@link parseWorkload} (or YAML text).
 * @returns a {@link Trace}; request order = generation order (follow-up turns after their parent).
 * @throws KvmgrError `KVMGR_BAD_CONFIG` when given text that does not validate.
 */
export function generateWorkload(spec: WorkloadSpec | string): Trace {
  const s = typeof spec === 'string' ? parseWorkload(spec) : spec;
  const rng = createRng(s.seed);
  const durUs = s.duration_s * 1e6;
  const out: SimRequest[] = [];
  let nextId = 1;
  const newId = (): number => nextId++;
  const sysIds: number[][] = [];
  const sess = s.sessions;
  if (sess !== undefined) {
    for (let g = 0; g < sess.system_prompts; g++) {
      const n = Math.floor(sess.system_tokens / 16);
      sysIds.push(Array.from({ length: n }, () => newId()));
    }
  }
  const meta = (): Pick<SimRequest, 'sloClass' | 'slo' | 'tenant' | 'priority'> => {
    const c = pickShare(rng, s.slo_classes);
    const t = pickShare(rng, s.tenants);
    return {
      ...(c === undefined ? {} : { sloClass: c.name as SloClass }),
      ...(c === undefined || (c.ttft_ms === undefined && c.tpot_ms === undefined)
        ? {}
        : { slo: { ...(c.ttft_ms === undefined ? {} : { ttftMs: c.ttft_ms }), ...(c.tpot_ms === undefined ? {} : { tpotMs: c.tpot_ms }) } }),
      ...(c?.priority === undefined ? {} : { priority: c.priority }),
      ...(t === undefined ? {} : { tenant: t.name }),
    };
  };
  const freshIds = (tokens: number): Uint32Array => {
    const ids = new Uint32Array(Math.ceil(tokens / 16));
    for (let i = 0; i < ids.length; i++) ids[i] = newId();
    return ids;
  };
  const base = s.arrival;
  const times = generateArrivals(Math.ceil(base.rate * s.duration_s * 1.5) + 10, base.process === 'gamma' ? { kind: 'gamma', ratePerSec: base.rate, cv: base.cv } : { kind: base.process, ratePerSec: base.rate }, rng.fork());
  let sessionNo = 0;
  for (const t of times) {
    if (t > durUs) break;
    const m = meta();
    if (sess !== undefined && rng.next() < sess.share) {
      const sid = `s${sessionNo++}`;
      const turns = rng.int(sess.turns.min, sess.turns.max);
      const sys = sysIds[rng.int(0, sysIds.length - 1)] ?? [];
      const ids: number[] = [...sys];
      let context = sess.system_tokens;
      let prev = -1;
      for (let k = 0; k < turns; k++) {
        const user = sampleLength(rng, sess.user_tokens);
        const output = sampleLength(rng, sess.output_tokens);
        const prompt = context + user;
        const total = prompt + output;
        while (ids.length < Math.ceil(total / 16)) ids.push(newId());
        const index = out.length;
        out.push({
          requestId: `${s.name}#${sid}.${k}`,
          arrivalUs: Math.round(t),
          promptTokens: prompt,
          maxTokens: Math.max(s.max_tokens, output),
          outputTokens: output,
          hashIds: Uint32Array.from(ids.slice(0, Math.ceil(total / 16))),
          hashBlockTokens: 16,
          hashTokens: total,
          sessionId: sid,
          ...m,
          ...(k > 0 ? { previousTurn: prev, thinkTimeUs: Math.round(rng.exponential(sess.think_time_s * 1e6)) } : {}),
        });
        prev = index;
        context = total;
      }
    } else {
      const prompt = sampleLength(rng, s.single.prompt_tokens);
      const output = sampleLength(rng, s.single.output_tokens);
      out.push({
        requestId: `${s.name}#${out.length}`,
        arrivalUs: Math.round(t),
        promptTokens: prompt,
        maxTokens: Math.max(s.max_tokens, output),
        outputTokens: output,
        hashIds: freshIds(prompt),
        hashBlockTokens: 16,
        ...m,
      });
    }
  }
  const waves = (list: WorkloadSpec['bursts'], kind: 'burst' | 'embed'): void => {
    for (const [wi, w] of list.entries()) {
      const ts = generateArrivals(Math.floor(w.rate * w.duration_s), { kind: 'poisson', ratePerSec: w.rate }, rng.fork());
      for (const [i, dt] of ts.entries()) {
        if (dt > w.duration_s * 1e6) break;
        const prompt = sampleLength(rng, w.prompt_tokens);
        const output = kind === 'embed' ? 0 : sampleLength(rng, w.output_tokens ?? s.single.output_tokens);
        out.push({
          requestId: `${s.name}#${kind}${wi}.${i}`,
          arrivalUs: Math.round(w.at_s * 1e6 + dt),
          promptTokens: prompt,
          maxTokens: Math.max(1, kind === 'embed' ? 1 : Math.max(s.max_tokens, output)),
          outputTokens: output,
          ...(kind === 'embed' ? { kind: 'embed' as const } : { hashIds: freshIds(prompt), hashBlockTokens: 16 }),
          ...meta(),
        });
      }
    }
  };
  waves(s.bursts, 'burst');
  waves(s.embeddings, 'embed');
  // Stable order by arrival; follow-up turns keep pointing at their parent's new index.
  const order = out.map((_, i) => i).sort((a, b) => (out[a] as SimRequest).arrivalUs - (out[b] as SimRequest).arrivalUs || a - b);
  const pos = new Int32Array(out.length);
  for (const [newIdx, old] of order.entries()) pos[old] = newIdx;
  const requests = order.map((old) => {
    const r = out[old] as SimRequest;
    return r.previousTurn === undefined ? r : { ...r, previousTurn: pos[r.previousTurn] as number };
  });
  // A follow-up may now sit before its parent (same first-turn arrival): fix by moving parents first.
  const fixed = requests.every((r, i) => r.previousTurn === undefined || r.previousTurn < i);
  if (!fixed) throw new KvmgrError('KVMGR_INVALID_STATE', 'workload ordering put a session turn before its parent');
  return { name: s.name, requests, skippedRows: 0, skippedReasons: [] };
}
