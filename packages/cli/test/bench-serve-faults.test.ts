/**
 * Issue #25, check 4 (the unreachable-target half is in bench-serve.test.ts): a target that fails
 * about half the requests (`failRate: 0.5`, seeded) and one that dies mid-run (`dieAfter`) — the
 * run completes, every request is accounted for, failures are counted by reason in the summary
 * table, inference-perf's `failures` block and the per-request file.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type EngineServer, createEngineServer } from '@kvmgr/engine-server';
import { afterAll, describe, expect, it } from 'vitest';
import { runBenchServeCommand } from '../src/bench-serve/command.js';

const json = (dir: string, name: string) => JSON.parse(readFileSync(join(dir, name), 'utf8'));
const started: EngineServer[] = [];
afterAll(async () => {
  await Promise.all(started.map((e) => e.close()));
});

describe('bench serve against a failing target', () => {
  it('half the requests answered 500: failures counted by reason, the run completes', async () => {
    const engine = await createEngineServer({ host: '127.0.0.1', port: 0, timeScale: 50, failRate: 0.5, seed: 3 });
    started.push(engine);
    const out = mkdtempSync(join(tmpdir(), 'kvmgr-bench-fail-'));
    let stdout = '';
    await runBenchServeCommand({ target: engine.url, limit: 40, timeScale: 50, out, progress: false, vllmJson: true }, { out: (t) => (stdout += t) });
    const s = json(out, 'summary_lifecycle_metrics.json');
    const perRequest = json(out, 'per_request_lifecycle_metrics.json') as Array<{ error: { error_type: string; error_msg: string } | null }>;
    const failed = perRequest.filter((r) => r.error !== null);
    expect(perRequest).toHaveLength(40);
    expect(s.load_summary.count).toBe(40);
    expect(s.successes.count + s.failures.count).toBe(40);
    expect(s.failures.count).toBe(failed.length);
    // seeded, so not exactly half: a binomial(40, 0.5) well inside (5, 35)
    expect(failed.length).toBeGreaterThan(5);
    expect(failed.length).toBeLessThan(35);
    for (const r of failed) {
      expect(r.error?.error_type).toBe('500 Internal Server Error');
      expect(JSON.parse(r.error?.error_msg ?? '{}').error.code).toBe('injected_failure');
    }
    expect(s.failures.request_latency).not.toBeNull();
    expect(stdout).toContain(`requests failed`);
    expect(stdout).toContain(`failures: bench serve: ${failed.length} × 500 Internal Server Error`);
    const vllm = json(out, 'vllm_bench_serve.json');
    expect(vllm.failed).toBe(failed.length);
    expect(vllm.completed).toBe(40 - failed.length);
  }, 120_000);

  it('a target that dies mid-run: the requests after its death fail with the socket error, the run completes', async () => {
    const engine = await createEngineServer({ host: '127.0.0.1', port: 0, timeScale: 50, dieAfter: 6 });
    started.push(engine);
    const out = mkdtempSync(join(tmpdir(), 'kvmgr-bench-die-'));
    let stdout = '';
    await runBenchServeCommand({ target: engine.url, limit: 20, concurrency: 2, timeScale: 50, out, progress: false }, { out: (t) => (stdout += t) });
    const s = json(out, 'summary_lifecycle_metrics.json');
    const perRequest = json(out, 'per_request_lifecycle_metrics.json') as Array<{ error: { error_type: string; error_msg: string } | null }>;
    expect(perRequest).toHaveLength(20);
    expect(s.successes.count).toBeGreaterThanOrEqual(4);
    expect(s.successes.count).toBeLessThan(6);
    expect(s.failures.count).toBe(20 - s.successes.count);
    const reasons = new Set(perRequest.flatMap((r) => (r.error ? [r.error.error_type] : [])));
    // the request in flight at the death loses its stream; the rest find the port closed
    for (const r of perRequest.filter((x) => x.error !== null)) expect(r.error?.error_msg).toMatch(/ECONNREFUSED|ECONNRESET|terminated|other side closed|socket/i);
    expect(reasons.size).toBeGreaterThanOrEqual(1);
    expect(stdout).toMatch(/failures: bench serve: \d+ × /);
  }, 120_000);
});
