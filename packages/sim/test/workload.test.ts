import { isKvmgrError } from '@kvmgr/core';
import { describe, expect, it } from 'vitest';
import { generateWorkload, parseWorkload, runReplay } from '../src/index.js';

const YAML = `
name: chat
seed: 3
duration_s: 120
arrival: { process: gamma, rate: 2, cv: 2 }
sessions: { share: 0.6, turns: { min: 2, max: 4 }, think_time_s: 5, system_prompts: 2, system_tokens: 320 }
slo_classes:
  - { name: critical, share: 0.25, ttft_ms: 500, tpot_ms: 60 }
  - { name: standard, share: 0.75, ttft_ms: 3000, tpot_ms: 150 }
tenants: [{ name: a, share: 0.7 }, { name: b, share: 0.3 }]
bursts: [{ at_s: 30, duration_s: 5, rate: 10, prompt_tokens: { mean: 6000 }, output_tokens: { mean: 400 } }]
embeddings: [{ at_s: 60, duration_s: 5, rate: 20, prompt_tokens: { mean: 400 } }]
`;

describe('YAML workloads', () => {
  it('validates with field paths', () => {
    const bad = (text: string) => {
      try {
        parseWorkload(text, 'w.yaml');
      } catch (e) {
        return e;
      }
      return undefined;
    };
    const e = bad('duration_s: 10\narrival: { rate: -1 }');
    expect(isKvmgrError(e, 'KVMGR_BAD_CONFIG')).toBe(true);
    expect((e as Error).message).toMatch(/^w\.yaml: arrival\.rate: /);
    expect((bad('duration_s: 10\narrival: { rate: 1 }\nbogus: 1') as Error).message).toMatch(/^w\.yaml: bogus: .*bogus/);
    expect((bad('duration_s: 10\narrival: { rate: 1 }\nsessions: { share: 0.5, turns: { min: 4, max: 2 }, think_time_s: 1 }') as Error).message).toBe(
      'w.yaml: sessions.turns: min (4) must be <= max (2)',
    );
    expect((bad('a: [') as Error).message).toMatch(/^w\.yaml: not valid YAML/);
  });

  it('generates sessions with accumulating context, classes, tenants, bursts and embeddings, deterministically', () => {
    const t = generateWorkload(YAML);
    expect(JSON.stringify(generateWorkload(YAML).requests.map((r) => [r.requestId, r.arrivalUs, r.promptTokens]))).toBe(
      JSON.stringify(t.requests.map((r) => [r.requestId, r.arrivalUs, r.promptTokens])),
    );
    const turns = t.requests.filter((r) => r.previousTurn !== undefined);
    expect(turns.length).toBeGreaterThan(10);
    for (const r of turns) {
      const p = t.requests[r.previousTurn as number]!;
      expect(p.sessionId).toBe(r.sessionId);
      // The new prompt contains the previous prompt and answer, and shares their hash ids.
      expect(r.promptTokens).toBeGreaterThan(p.promptTokens + p.outputTokens);
      const shared = Math.floor((p.promptTokens + p.outputTokens) / 16);
      expect(Array.from(r.hashIds!.subarray(0, shared))).toEqual(Array.from(p.hashIds!.subarray(0, shared)));
    }
    expect(t.requests.filter((r) => r.kind === 'embed').length).toBeGreaterThan(50);
    expect(t.requests.filter((r) => r.promptTokens > 2000 && r.requestId.includes('burst')).length).toBeGreaterThan(20);
    expect(new Set(t.requests.map((r) => r.tenant))).toEqual(new Set(['a', 'b']));
    expect(t.requests.filter((r) => r.sloClass === 'critical').every((r) => r.slo?.ttftMs === 500)).toBe(true);
  });

  it('replays: follow-up turns start after the previous answer plus think time and hit the cache', () => {
    const trace = generateWorkload(YAML);
    const res = runReplay({ trace, instances: 2, profile: 'kvmgr-default', seed: 1 });
    expect(res.violations).toEqual([]);
    expect(res.summary.finished).toBe(trace.requests.length);
    const rows = res.requests;
    for (const [i, r] of trace.requests.entries()) {
      if (r.previousTurn === undefined) continue;
      expect(rows[i]!.arrivalMs).toBeGreaterThanOrEqual(rows[r.previousTurn]!.finishMs);
    }
    const followUps = rows.filter((_, i) => trace.requests[i]!.previousTurn !== undefined);
    const hit = followUps.reduce((a, r) => a + r.cachedTokens, 0) / followUps.reduce((a, r) => a + r.promptTokens, 0);
    expect(hit).toBeGreaterThan(0.5);
    expect(res.summary.jainIndex).toBeGreaterThan(0.5);
    expect(res.summary.jainIndex).toBeLessThanOrEqual(1);
  });
});
