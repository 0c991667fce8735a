import { describe, expect, it } from 'vitest';
import type { LiveCpu } from './live-cpu.js';
import { capacityLine } from './live-cpu.js';
import { cpuLimitWarning, cpuLines, gatewayLine, headline, liveRoutingRouter, liveSendTrace, reroutedCount, traceLoad } from './live.js';
import type { BenchRun } from './bench-serve/report.js';
import type { RunResult } from './run.js';
import type { Trace } from '@kvmgr/sim';

const side = (label: string, goodputReqPerS: number, ttftP99Ms: number) => ({ label, summary: { goodputReqPerS, ttftP99Ms } });
const simSide = (goodputRps: number, p99: number) => ({ summary: { goodputRps, ttftMs: { p99 } } });

describe('kvmgr live: the headline', () => {
  it('says by how much kvmgr beats round-robin on goodput and TTFT p99, live and in the simulator', () => {
    const h = headline([side('round-robin', 2, 1000), side('kvmgr', 2.2, 900)], [simSide(1.857, 9473.2), simSide(2.02, 8797.3)]);
    expect(h).toBe('live, kvmgr beats round-robin: goodput +10.0% (2.000 → 2.200 req/s), TTFT p99 -10.0% (1000 → 900 ms); sim: goodput +8.8%, TTFT p99 -7.1%');
  });

  it('does not claim a win it did not get', () => {
    expect(headline([side('round-robin', 2, 1000), side('kvmgr', 1.9, 1100)])).toMatch(/^live, kvmgr does not beat round-robin: goodput -5\.0%/);
    expect(headline([side('round-robin', 2, 1000), side('kvmgr', 2.1, 1100)])).toMatch(/^live, kvmgr partly beats round-robin: goodput \+5\.0% .* TTFT p99 \+10\.0%/);
  });
});

describe('kvmgr live: the gateway line', () => {
  it('names the routing and the KV-event blocks the gateway holds per engine', () => {
    const l = gatewayLine('kvmgr', {
      endpoints: [
        { kvEvents: true, cachedBlocks: 10 },
        { kvEvents: true, cachedBlocks: 0 },
      ],
      indexBlocks: 10,
      routing: { strategy: 'scored', scorers: [{ name: 'prefix-affinity', weight: 3, params: {} }, { name: 'queue-depth', weight: 2, params: {} }], picker: 'max', blockSize: 16 },
    });
    expect(l).toBe('gateway, kvmgr: routing prefix-affinity:3,queue-depth:2 (max, block size 16); KV events from 2/2 engines, blocks held per engine 10 / 0, prefix index 10 blocks');
    expect(gatewayLine('round-robin', { endpoints: [{ kvEvents: false, cachedBlocks: 0 }], indexBlocks: 0, routing: { strategy: 'round-robin', scorers: [], picker: 'max', blockSize: 16 } })).toMatch(/routing round-robin; KV events from 0\/1 engines/);
  });
});

describe('kvmgr live: CPU lines and the CPU-bound warning', () => {
  const cpu = (engines: number[], self: number, machineBusy?: number): LiveCpu => ({ wallS: 60, engines, self, cpus: 2, ...(machineBusy !== undefined ? { machineBusy } : {}), usPerToken: { engines: 150, self: 90 } });

  it('prints cores per engine, the gateway + client, the stack and the machine', () => {
    const [l] = cpuLines([{ label: 'kvmgr', cpu: cpu([0.1, 0.2], 0.3, 0.5) }], false);
    expect(l).toBe('CPU, kvmgr (cores over 60.0 s wall, 2 CPUs): engines 0.10 + 0.20 = 0.30, gateway + client 0.30, stack 0.60 (engines 150 µs + gateway + client 90 µs per output token); machine 50% busy (all processes)');
  });

  it('warns when the machine is > 90% busy or one process is near a full core, else stays silent', () => {
    expect(cpuLimitWarning([{ label: 'kvmgr', cpu: cpu([0.1], 0.3, 0.5) }], 2)).toBeUndefined();
    expect(cpuLimitWarning([{ label: 'kvmgr', cpu: cpu([0.1], 0.3, 0.95) }], 2)).toMatch(/kvmgr: machine 95% busy.*--time-scale 2/);
    expect(cpuLimitWarning([{ label: 'round-robin', cpu: cpu([0.95], 0.3) }], 2)).toMatch(/round-robin: one process at 0\.95 cores/);
  });
});

describe('kvmgr live: the capacity line', () => {
  it('multiplies CPU per token by the tokens per wall second, for this run and for the whole trace', () => {
    const l = capacityLine(300, { requests: 300, outputTokens: 113_079, arrivalSpanS: 102 }, { requests: 3000, outputTokens: 1_048_832, arrivalSpanS: 987 }, 2, 2);
    // 113079 / 102 = 1108.6 tok/s × 2 × 300 µs = 0.67 cores; 1048832 × 300 µs = 314.6 s: 5.2 cores for a minute, 4.0 min at 1.3 cores
    expect(l).toBe(
      'capacity: 300 CPU µs per output token (stack, mean of the sides) × 1109 output tok/s of arrivals (113079 tokens, 300 requests in 102 s) × time scale 2 = 0.67 cores of 2; the whole trace (3000 requests, 1048832 output tokens, 987 s of arrivals) in one minute per side would need 5.2 cores, and at 1.3 cores takes ≥ 4.0 min per side (time scale ≤ 4.1)',
    );
  });

  it("reads a trace's output tokens and arrival span, scaled by the rate", () => {
    const t = { requests: [{ arrivalUs: 1e6, outputTokens: 10 }, { arrivalUs: 5e6, outputTokens: 0 }] };
    expect(traceLoad(t, 2)).toEqual({ requests: 2, outputTokens: 11, arrivalSpanS: 2 });
  });
});

describe('kvmgr live: the simulator on the live run\'s routing', () => {
  const trace = { requests: [{ requestId: 't0' }, { requestId: 't1' }, { requestId: 't2' }] } as unknown as Trace;
  const run = (eps: Array<string | undefined>) => ({ derived: eps.map((endpoint, i) => ({ record: { id: `req-${i}`, ...(endpoint === undefined ? {} : { endpoint }) } })) }) as unknown as BenchRun;

  it('routes each request to the engine the gateway named, and the rest round-robin', () => {
    const { router, missing, assigned } = liveRoutingRouter(trace, run(['engine-2', undefined, 'engine-0']), 4);
    expect(missing).toBe(1);
    expect([...assigned]).toEqual([
      ['t0', 2],
      ['t2', 0],
    ]);
    const at = (id: string) => router.route({ requestId: id } as never, new Uint32Array(0), [], 0).decode;
    expect(at('t0')).toBe(2);
    expect(at('t2')).toBe(0);
    expect(at('t1')).toBe(1);
    expect(at('t1')).toBe(2);
    expect(router.route({ requestId: 't0' } as never, new Uint32Array(0), [], 0).prefill).toBe(-1);
  });

  it('ignores an endpoint that is not one of the instances', () => {
    expect(liveRoutingRouter(trace, run(['engine-7', 'other', 'engine-1']), 4).missing).toBe(2);
  });

  it('moves each arrival by how late the client sent it (× the rate scale), sorted again', () => {
    const tr = { name: 't', requests: [{ requestId: 't0', arrivalUs: 0 }, { requestId: 't1', arrivalUs: 1000 }, { requestId: 't2', arrivalUs: 2000 }] } as unknown as Trace;
    const rec = (i: number, scheduledS: number, startS: number) => ({ record: { id: `req-${i}`, scheduledS, startS } });
    const r = { derived: [rec(0, 0, 0.0025), rec(1, 0.001, 0.0009), rec(2, 0.002, 0.002)] } as unknown as BenchRun;
    const out = liveSendTrace(tr, r, 2);
    expect(out.requests.map((q) => [q.requestId, q.arrivalUs])).toEqual([
      ['t1', 1000],
      ['t2', 2000],
      ['t0', 5000],
    ]);
    expect(tr.requests[0]?.arrivalUs).toBe(0);
  });

  it('counts the requests the simulator placed elsewhere', () => {
    const rows = [
      { requestId: 't0', instance: 'inst-2' },
      { requestId: 't1', instance: 'inst-1' },
      { requestId: 't2', instance: 'inst-3' },
    ] as unknown as RunResult['requests'];
    expect(reroutedCount(new Map([['t0', 2], ['t2', 0]]), rows)).toBe(1);
    expect(reroutedCount(new Map([['t0', 1], ['t1', 0], ['t2', 0]]), rows)).toBe(3);
  });
});
