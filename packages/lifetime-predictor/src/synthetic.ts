/**
 * A synthetic templated workload: requests come from `templates` prompt templates, each with
 * its own prompt length and a tight output length distribution (±`jitter` relative, uniform),
 * in seeded random order. Used by tests and the README's second check.
 */
import { createRng, requireInRange, requirePositiveInt } from '@kvmgr/core';
import type { TraceRecord } from './traces.js';

/** Options of {@link templatedWorkload}. */
export interface TemplatedWorkloadOptions {
  /** Requests. @default 5000 */
  readonly requests?: number;
  /** Templates. @default 20 */
  readonly templates?: number;
  /** Relative half-width of each template's output length distribution. @default 0.05 */
  readonly jitter?: number;
  /** Seed. @default 7 */
  readonly seed?: number;
  /** When set, template output means are redrawn after this many requests (a shift). */
  readonly shiftAt?: number;
}

/**
 * Generates a templated workload (`prefixId` = template id, `tenant` = `t<id mod 4>`).
 * Template output means are drawn log-uniformly from 20–1000 tokens.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` on a bad option.
 */
export function templatedWorkload(options: TemplatedWorkloadOptions = {}): TraceRecord[] {
  const n = requirePositiveInt('requests', options.requests ?? 5000);
  const k = requirePositiveInt('templates', options.templates ?? 20);
  const jitter = requireInRange('jitter', options.jitter ?? 0.05, 0, 0.9);
  const rng = createRng(options.seed ?? 7);
  const draw = (): number[] => Array.from({ length: k }, () => Math.round(20 * 50 ** rng.next()));
  let means = draw();
  const prompts = Array.from({ length: k }, () => rng.int(64, 4096));
  const out: TraceRecord[] = [];
  for (let i = 0; i < n; i++) {
    if (options.shiftAt !== undefined && i === options.shiftAt) means = draw();
    const t = rng.int(0, k - 1);
    const m = means[t] as number;
    const y = Math.max(1, Math.round(m * (1 + jitter * (2 * rng.next() - 1))));
    out.push({
      features: { promptTokens: prompts[t] as number, prefixId: t, tenant: `t${t % 4}`, arrivalMs: i * 100 },
      actualOutputTokens: y,
    });
  }
  return out;
}
