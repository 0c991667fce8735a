/**
 * `kvmgr metrics scrape` as a user runs it (a child process on the sources) against a real
 * node:http server on 127.0.0.1 serving the adapters' fixtures; then the errors, each one line
 * and exit 2.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runMetricsScrape } from '../src/metrics.js';

const BIN = resolve(import.meta.dirname, '../src/bin.ts');
const fixture = (path: string) => readFileSync(resolve(import.meta.dirname, '../..', path), 'utf8');
const BODIES: Record<string, string> = {
  '/vllm': fixture('adapter-vllm/src/fixtures/vllm-v1-dp2.prom'),
  '/sglang': fixture('adapter-sglang/src/fixtures/sglang-dp2-tp2.prom'),
  '/tgi': fixture('adapter-tgi/src/fixtures/tgi.prom'),
  '/lmdeploy': fixture('adapter-lmdeploy/src/fixtures/lmdeploy-dp2.prom'),
  '/html': '<!DOCTYPE html>\n<html><body>hello</body></html>\n',
  '/other': 'process_cpu_seconds_total 3\n',
};

function kvmgr(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, ['--conditions=@kvmgr/source', '--import', 'tsx', BIN, ...args], { cwd: resolve(import.meta.dirname, '..') });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', fail);
    child.on('close', (status) => done({ status, stdout, stderr }));
  });
}

let server: Server;
let base: string;
let closedPortUrl: string;
beforeAll(async () => {
  server = createServer((req, res) => {
    const body = BODIES[req.url ?? ''];
    res.writeHead(body === undefined ? 404 : 200, { 'content-type': 'text/plain; version=0.0.4' });
    res.end(body ?? 'not found');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  closedPortUrl = `http://127.0.0.1:${(closed.address() as AddressInfo).port}/metrics`;
  await new Promise<void>((r) => closed.close(() => r()));
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

describe('kvmgr metrics scrape', () => {
  it('auto-detects vLLM and prints the snapshot table', async () => {
    const r = await kvmgr(['metrics', 'scrape', `${base}/vllm`]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^engine\s+vllm$/m);
    expect(r.stdout).toMatch(/^KV utilization\s+50\.0%$/m);
    expect(r.stdout).toMatch(/^running\s+21$/m);
    expect(r.stdout).toMatch(/^blocks free \/ total\s+27000 \/ 54000 \(16 tokens each\)$/m);
  });

  it('errors: unreachable URL, not Prometheus text, HTTP 404, no engine metrics → one line, exit 2', async () => {
    const cases: Array<[string, RegExp]> = [
      [closedPortUrl, /cannot connect \(ECONNREFUSED\)/],
      [`${base}/html`, /not Prometheus text: metrics line 1/],
      [`${base}/nope`, /HTTP 404/],
      [`${base}/other`, /no vLLM, SGLang, TGI or LMDeploy metrics/],
    ];
    const results = await Promise.all(cases.map(([url]) => kvmgr(['metrics', 'scrape', url])));
    results.forEach((r, i) => {
      expect(r.status).toBe(2);
      expect(r.stdout).toBe('');
      const lines = r.stderr.trimEnd().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^kvmgr: error: /);
      expect(lines[0]).toMatch(cases[i]![1]);
    });
  });
});

describe('runMetricsScrape (in process)', () => {
  const run = async (url: string, opts: Parameters<typeof runMetricsScrape>[1], signal?: AbortSignal) => {
    let out = '';
    let err = '';
    const code = await runMetricsScrape(url, opts, { out: (t) => (out += t), err: (t) => (err += t), ...(signal ? { signal } : {}) });
    return { code, out, err };
  };

  it.each([
    ['sglang', { kvUtilization: 0.375, running: 16, waiting: 3, engine: 'sglang' }],
    ['lmdeploy', { kvUtilization: 0.375, running: 12, waiting: 3, engine: 'lmdeploy' }],
  ])('--json auto-detects %s', async (path, expected) => {
    const r = await run(`${base}/${path}`, { json: true });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject(expected);
  });

  it('--engine tgi --token-capacity estimates KV utilization and says so', async () => {
    const r = await run(`${base}/tgi`, { engine: 'tgi', tokenCapacity: '16000' });
    expect(r.out).toMatch(/^KV utilization\s+50\.0% \(estimated\)$/m);
  });

  it('--engine that does not match the exposition is exit 2', async () => {
    const r = await run(`${base}/tgi`, { engine: 'vllm' });
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^kvmgr: error: metrics: no vLLM metrics/);
  });

  it('--watch scrapes repeatedly until stopped', async () => {
    const ac = new AbortController();
    let n = 0;
    const code = await runMetricsScrape(`${base}/vllm`, { json: true, watch: '20ms' }, {
      out: () => {
        if (++n === 3) ac.abort();
      },
      err: () => {},
      signal: ac.signal,
    });
    expect(code).toBe(0);
    expect(n).toBe(3);
  });

  it('bad flags throw KVMGR_INVALID_ARGUMENT', async () => {
    await expect(run('not a url', {})).rejects.toMatchObject({ code: 'KVMGR_INVALID_ARGUMENT' });
    await expect(run(`${base}/vllm`, { watch: '2' })).rejects.toMatchObject({ code: 'KVMGR_INVALID_ARGUMENT' });
  });
});
