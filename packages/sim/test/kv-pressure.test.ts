/**
 * KV pressure from the engine core to the router: with a CPU tier under pressure, the snapshots
 * the router reads carry the host link's queued transfer time and the CPU reloads per second, so
 * the `kv-pressure` scorers route differently from `kv`; without a CPU tier both are 0 and the
 * routes are the same.
 */
import type { EngineSnapshot } from '@kvmgr/core';
import { describe, expect, it } from 'vitest';
import { VLLM_DEFAULT_PROFILE, createBlisModel, createSimRouter, runReplay } from '../src/index.js';
import type { SimRouter } from '../src/index.js';
import type { SimRequest } from '../src/traces/types.js';

const latency = createBlisModel({ model: 'meta-llama/llama-3.1-8b-instruct', gpu: 'H100', tp: 1 });

// 8 conversations of growing prompts (shared prefixes) on 3 instances whose GPU caches hold about
// two conversations each: their prefixes are evicted (written back to CPU) and reloaded.
const trace: SimRequest[] = Array.from({ length: 96 }, (_, i) => {
  const conv = i % 8;
  const prompt = 300 + Math.floor(i / 8) * 40 + conv * 5;
  const ids = Uint32Array.from({ length: Math.ceil(prompt / 16) }, (_, b) => conv * 10_000 + b);
  return { requestId: `r${i}`, arrivalUs: i * 40_000, promptTokens: prompt, maxTokens: 30, outputTokens: 10 + (i % 20), hashIds: ids, hashBlockTokens: 16, sloClass: i % 3 === 0 ? 'critical' : 'batch' };
});

interface Seen {
  readonly pending: number[];
  readonly thrash: number[];
}

/** Routes with `weights`, recording the pressure fields of every snapshot it reads. */
function recording(weights: string, seen: Seen): SimRouter {
  const base = createSimRouter(weights, { instanceIds: ['a', 'b', 'c'], blockSize: 16, seed: 0 });
  return {
    name: base.name,
    route(req, keys, snaps: readonly EngineSnapshot[], now, local) {
      for (const s of snaps) {
        seen.pending.push(s.pendingTransferLatency);
        seen.thrash.push(s.kvThrashingRate);
      }
      return base.route(req, keys, snaps, now, local);
    },
    ...(base.onKeyStored === undefined ? {} : { onKeyStored: base.onKeyStored.bind(base) }),
    ...(base.onKeyRemoved === undefined ? {} : { onKeyRemoved: base.onKeyRemoved.bind(base) }),
    ...(base.onFinished === undefined ? {} : { onFinished: base.onFinished.bind(base) }),
  };
}

function routes(weights: string, cpuBlocks: number): { instances: string[]; seen: Seen; reloaded: number } {
  const seen: Seen = { pending: [], thrash: [] };
  const res = runReplay({
    trace,
    instances: 3,
    profile: { ...VLLM_DEFAULT_PROFILE, name: 'small', tokenBudget: 512, maxSeqs: 8 },
    simRouter: recording(weights, seen),
    gpuBlocks: 64,
    cpuBlocks,
    latency,
    seed: 0,
  });
  expect(res.violations).toEqual([]);
  return { instances: res.requests.map((r) => r.instance), seen, reloaded: res.summary.reloadedBlocks };
}

describe('KV pressure reaches the router', () => {
  it('with a CPU tier under pressure: pending transfers and thrashing are reported, kv-pressure routes differ from kv', () => {
    const kv = routes('pa:3,qd:2,kv:2', 400);
    const kp = routes('pa:3,qd:2,kp:2', 400);
    const kps = routes('pa:3,qd:2,kps:2', 400);
    expect(kv.reloaded).toBeGreaterThan(0);
    expect(Math.max(...kv.seen.pending)).toBeGreaterThan(0);
    expect(Math.max(...kv.seen.thrash)).toBeGreaterThan(0);
    // same traffic, same router otherwise: the pressure terms change some decisions
    expect(kp.instances).not.toEqual(kv.instances);
    expect(kps.instances).not.toEqual(kv.instances);
  });

  it('without a CPU tier: both signals are 0 and kv-pressure routes exactly like kv', () => {
    const kv = routes('pa:3,qd:2,kv:2', 0);
    const kp = routes('pa:3,qd:2,kp:2', 0);
    const kps = routes('pa:3,qd:2,kps:2', 0);
    expect(new Set([...kv.seen.pending, ...kp.seen.pending, ...kv.seen.thrash, ...kp.seen.thrash])).toEqual(new Set([0]));
    expect(kp.instances).toEqual(kv.instances);
    expect(kps.instances).toEqual(kv.instances);
  });
});
