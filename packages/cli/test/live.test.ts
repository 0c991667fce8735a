/**
 * `kvmgr live` as a user runs it (the executable, a child process on the sources): 40 requests of
 * the bundled trace at time scale 50 through 4 engine servers (kvmgr engine child processes), behind a round-robin
 * gateway and then the kvmgr gateway; both sides complete, the side-by-side table (with the
 * simulator's columns) is printed with the live-vs-simulated lines and the client's schedule
 * delay, the round-robin side runs vllm-default engines and the kvmgr side kvmgr-default ones (as
 * `kvmgr replay`), and live.json and each side's inference-perf files are written. An unknown
 * `--profile` fails before any engine starts. Bounded: 40 requests, the child is killed after 240 s.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const BIN = resolve(import.meta.dirname, '../src/bin.ts');

describe('kvmgr live', () => {
  it('runs both sides on 40 requests and prints the table next to the simulator', () => {
    const out = join(mkdtempSync(join(tmpdir(), 'kvmgr-live-')), 'out');
    const r = spawnSync(process.execPath, ['--conditions=@kvmgr/source', '--import', 'tsx', BIN, 'live', '--limit', '40', '--time-scale', '50', '--out', out, '--no-progress'], {
      encoding: 'utf8',
      cwd: resolve(import.meta.dirname, '..'),
      timeout: 240_000,
      killSignal: 'SIGKILL',
    });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/metric\s+live round-robin\s+live kvmgr\s+change\s+sim round-robin\s+sim kvmgr\s+change/);
    for (const label of ['prefix hit rate (%)', 'TTFT p50 (ms)', 'TTFT p99 (ms)', 'TPOT p50 (ms)', 'TPOT p99 (ms)', 'goodput (req/s)', 'SLO attainment (%)']) expect(r.stdout).toContain(label);
    expect(r.stdout).toMatch(/requests completed\s+40\s+40\s/);
    expect(r.stdout).toMatch(/requests failed\s+0\s+0\s/);
    expect(r.stdout).toContain('round-robin on vllm-default engines, kvmgr-default on kvmgr-default engines');
    expect(r.stdout).toMatch(/client schedule delay \(model ms\): round-robin p50 [\d.]+, p99 [\d.]+; kvmgr p50 [\d.]+, p99 [\d.]+/);
    expect(r.stdout).toMatch(/live vs sim, round-robin: throughput [+-][\d.]+%.*, TTFT p50 [+-][\d.]+%.*, TPOT p50 [+-][\d.]+%/);
    expect(r.stdout).toMatch(/live vs sim, kvmgr: throughput [+-][\d.]+%/);
    // the simulator again on the engines the gateway picked (every request's x-kvmgr-endpoint recorded)
    expect(r.stdout).toMatch(/^requests the gateway placed on another engine than the simulator's router did: round-robin \d+ of 40, kvmgr \d+ of 40$/m);
    expect(r.stdout).toMatch(/^live vs the sim on the live run's routing and send times, kvmgr: throughput [+-][\d.]+%/m);
    expect(r.stdout).not.toContain('without a recorded endpoint');
    expect(r.stdout).toMatch(/^live, kvmgr (beats|partly beats|does not beat) round-robin: goodput ([+-][\d.]+%|-) .*TTFT p99 ([+-][\d.]+%|-) .*; sim: goodput /m);
    // the kvmgr gateway routes on the engines' caches: KV events from every engine, a non-empty prefix index
    const gw = /^gateway, kvmgr: routing prefix-affinity:3,queue-depth:2,kv-pressure:2 \(max, block size 16\); KV events from 4\/4 engines, blocks held per engine [\d /]+, prefix index (\d+) blocks$/m.exec(r.stdout);
    expect(gw, r.stdout).not.toBeNull();
    expect(Number(gw?.[1])).toBeGreaterThan(0);
    expect(r.stdout).toMatch(/^gateway, round-robin: routing round-robin; /m);
    expect(r.stdout).toMatch(/^CPU, round-robin \(cores over [\d.]+ s wall, \d+ CPUs\): engines [\d.]+ \+ [\d.]+ \+ [\d.]+ \+ [\d.]+ = [\d.]+, gateway \+ client [\d.]+, stack [\d.]+ \(engines \d+ µs \+ gateway \+ client \d+ µs per output token\)/m);
    const live = JSON.parse(readFileSync(join(out, 'live.json'), 'utf8'));
    expect(live.kind).toBe('kvmgr.live');
    expect(live.setup.profiles).toEqual({ 'round-robin': 'vllm-default', kvmgr: 'kvmgr-default' });
    expect(live.live.kvmgr.scheduleDelayMs.p50).toBeGreaterThanOrEqual(0);
    expect(r.stdout).toMatch(/^capacity: \d+ CPU µs per output token .* 40 requests in \d+ s\) × time scale 50 = [\d.]+ cores of \d+; the whole trace \(3000 requests, 1048832 output tokens, 987 s of arrivals\)/m);
    expect(live.live.kvmgr.cpu.engines).toHaveLength(4);
    expect(live.live.kvmgr.cpu.self).toBeGreaterThan(0);
    expect(live.live['round-robin'].summary.completed).toBe(40);
    expect(live.live.kvmgr.summary.completed).toBe(40);
    expect(live.sim.kvmgr.requests).toBe(40);
    expect(live.simLiveRouting.kvmgr.placed).toBe(40);
    expect(live.simLiveRouting.kvmgr.missing).toBe(0);
    expect(live.simLiveRouting.kvmgr.summary.requests).toBe(40);
    for (const side of ['round-robin', 'kvmgr']) {
      for (const f of ['summary_lifecycle_metrics.json', 'stage_0_lifecycle_metrics.json', 'per_request_lifecycle_metrics.json', 'config.yaml', 'vllm_bench_serve.json']) {
        expect(existsSync(join(out, side, f)), `${side}/${f}`).toBe(true);
      }
    }
    expect(existsSync(join(out, 'report.html'))).toBe(true);
  }, 260_000);

  it('rejects an unknown --profile in one line before starting anything', () => {
    const out = join(mkdtempSync(join(tmpdir(), 'kvmgr-live-')), 'out');
    const r = spawnSync(process.execPath, ['--conditions=@kvmgr/source', '--import', 'tsx', BIN, 'live', '--profile', 'nope', '--limit', '5', '--out', out, '--no-progress'], {
      encoding: 'utf8',
      cwd: resolve(import.meta.dirname, '..'),
      timeout: 120_000,
      killSignal: 'SIGKILL',
    });
    expect(r.status).not.toBe(0);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain('--profile: unknown profile "nope"');
    expect(r.stderr).not.toContain('engines http://');
    expect(existsSync(join(out, 'live.json'))).toBe(false);
  }, 130_000);
});
