/**
 * Multi-turn sessions on the engine core: the blocks a turn fills while decoding are cached under
 * the keys the next turn's prompt carries (its hash ids cover prompt + answer), so turn 2 hits
 * turn 1's prompt blocks and its answer's full blocks; conservation holds on random sessions.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { VLLM_DEFAULT_PROFILE, createBlisModel, runReplay } from '../src/index.js';
import type { SimRequest } from '../src/traces/types.js';

const latency = createBlisModel({ model: 'meta-llama/llama-3.1-8b-instruct', gpu: 'H100', tp: 1 });

/** Turn `k` of a session: prompt = the previous turn's prompt + answer + `user` new tokens. */
function session(id: string, firstPrompt: number, turns: readonly { user: number; output: number }[], idBase: number, indexBase: number): SimRequest[] {
  const out: SimRequest[] = [];
  let context = firstPrompt - (turns[0]?.user ?? 0);
  const ids: number[] = [];
  for (const [k, t] of turns.entries()) {
    const prompt = context + t.user;
    const total = prompt + t.output;
    while (ids.length < Math.ceil(total / 16)) ids.push(idBase + ids.length);
    out.push({
      requestId: `${id}.${k}`,
      arrivalUs: 0,
      promptTokens: prompt,
      maxTokens: t.output,
      outputTokens: t.output,
      hashIds: Uint32Array.from(ids.slice(0, Math.ceil(total / 16))),
      hashBlockTokens: 16,
      hashTokens: total,
      sessionId: id,
      ...(k > 0 ? { previousTurn: indexBase + k - 1, thinkTimeUs: 100_000 } : {}),
    });
    context = total;
  }
  return out;
}

describe('multi-turn sessions cache the answer', () => {
  for (const prefixIndex of ['radix', 'hash-map'] as const) {
    for (const instances of [1, 3]) {
      it(`turn 2 hits turn 1's prompt blocks and its answer's full blocks (${prefixIndex}, ${instances} instance(s))`, () => {
        // turn 1: 100 prompt tokens (6 full blocks) + 61 output tokens; the last output token's KV
        // is never computed, so 160 tokens = 10 full blocks are cached: 6 of the prompt, 4 the
        // answer filled. Turn 2's prompt = 161 + 39 = 200 tokens.
        const trace = session('s', 100, [{ user: 100, output: 61 }, { user: 39, output: 5 }], 1, 0);
        expect(trace[1]!.promptTokens).toBe(200);
        // vllm-default routes round-robin: the prefix-affinity scorer sends turn 2 to turn 1's instance
        const res = runReplay({ trace, instances, profile: 'vllm-default', router: 'pa:1', latency, prefixIndex, seed: 0 });
        expect(res.violations).toEqual([]);
        const [t1, t2] = res.requests as [(typeof res.requests)[number], (typeof res.requests)[number]];
        expect(t1.cachedTokens).toBe(0);
        expect(t2.cachedTokens).toBe(160);
        // the router's index (fed by the KV events) sent turn 2 where its blocks are
        expect(t2.instance).toBe(t1.instance);
      });
    }
  }

  it('a later turn that shares only the prompt (answer not in its hash ids) hits the prompt blocks only', () => {
    // same shape, but turn 1 declares no answer coverage: only its 6 prompt blocks are cached
    const trace = session('s', 100, [{ user: 100, output: 61 }, { user: 39, output: 5 }], 1, 0).map((r, i) => (i === 0 ? { ...r, hashTokens: r.promptTokens } : r));
    const res = runReplay({ trace, instances: 1, profile: 'vllm-default', latency, seed: 0 });
    expect(res.violations).toEqual([]);
    expect(res.requests[1]!.cachedTokens).toBe(96);
  });

  it('conserves requests and blocks on random multi-turn sessions under memory pressure', () => {
    let answerHits = 0;
    const sessionArb = fc.record({
      first: fc.integer({ min: 1, max: 300 }),
      turns: fc.array(fc.record({ user: fc.integer({ min: 1, max: 120 }), output: fc.integer({ min: 1, max: 80 }) }), { minLength: 1, maxLength: 4 }),
      start: fc.integer({ min: 0, max: 2_000_000 }),
    });
    fc.assert(
      fc.property(
        fc.array(sessionArb, { minLength: 1, maxLength: 8 }),
        fc.integer({ min: 12, max: 120 }),
        fc.constantFrom(0, 60),
        fc.constantFrom('vllm-default', 'kvmgr-default'),
        fc.constantFrom<'radix' | 'hash-map'>('radix', 'hash-map'),
        fc.integer({ min: 1, max: 3 }),
        (sessions, gpuBlocks, cpuBlocks, profile, prefixIndex, nInst) => {
          const trace: SimRequest[] = [];
          for (const [s, sp] of sessions.entries()) {
            const turns = session(`s${s}`, sp.first + (sp.turns[0]?.user ?? 0), sp.turns, 1 + s * 100_000, trace.length);
            trace.push(...turns.map((r) => ({ ...r, arrivalUs: sp.start })));
          }
          const res = runReplay({
            trace,
            instances: nInst,
            profile: profile === 'vllm-default' ? { ...VLLM_DEFAULT_PROFILE, name: 'small', tokenBudget: 256, maxSeqs: 8 } : profile,
            gpuBlocks,
            cpuBlocks,
            prefixIndex,
            latency,
            seed: 1,
          });
          expect(res.violations).toEqual([]);
          expect(res.summary.finished + res.summary.rejected).toBe(trace.length);
          for (const [i, r] of res.requests.entries()) {
            const q = trace[i]!;
            if (q.previousTurn === undefined || r.rejectedReason !== '') continue;
            // a hit past the previous prompt's full blocks is an answer block
            const p = trace[q.previousTurn]!;
            if (r.cachedTokens > Math.floor(p.promptTokens / 16) * 16) answerHits++;
          }
        },
      ),
      { numRuns: 40, seed: 3 },
    );
    expect(answerHits).toBeGreaterThan(0);
  });
});
