/**
 * `kvmgr live`'s engines as child processes of `kvmgr engine`: a stack of two serves requests
 * through the gateway on both engines, and `close()` stops every child (their ports refuse
 * afterwards); `kvmgr live` interrupted by SIGINT stops its engines and gateway and exits 130.
 * Bounded: 2 engines, 6 requests; the CLI child is killed after 120 s.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type LiveStack, startLiveStack } from '../src/live.js';

const BIN = resolve(import.meta.dirname, '../src/bin.ts');

async function refused(url: string): Promise<boolean> {
  try {
    await fetch(`${url}/health`, { signal: AbortSignal.timeout(5000) });
    return false;
  } catch (e) {
    return /ECONNREFUSED/.test(String((e as { cause?: { code?: string } }).cause?.code ?? e));
  }
}

describe('kvmgr live: engines as child processes', () => {
  it('two kvmgr engine processes behind the gateway serve requests, and close() stops them', async () => {
    let stack: LiveStack | undefined;
    try {
      stack = await startLiveStack({ instances: 2, model: 'Llama-3.1-8B-Instruct', gpu: 'H100', timeScale: 50, seed: 1, routing: 'round-robin', engines: 'process' });
      expect(stack.engines).toHaveLength(2);
      expect(new Set(stack.engines.map((e) => e.url)).size).toBe(2);
      expect(stack.engines.every((e) => e.kvEventsEndpoint?.startsWith('tcp://127.0.0.1:'))).toBe(true);
      for (let i = 0; i < 6; i++) {
        const res = await fetch(`${stack.url}/v1/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: stack.model, prompt: [1000 + i, 2000, 3000, 4000], max_tokens: 3 }),
        });
        expect(res.status).toBe(200);
        expect(((await res.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens).toBe(3);
      }
      // round-robin: both processes served requests (their own /metrics say so)
      for (const e of stack.engines) {
        const m = await (await fetch(`${e.url}/metrics`)).text();
        const served = [...m.matchAll(/^vllm:request_success_total\{[^}]*\} (\S+)$/gm)].reduce((s, x) => s + Number(x[1]), 0);
        expect(served, e.url).toBeGreaterThan(0);
      }
    } finally {
      await stack?.close();
    }
    for (const e of stack?.engines ?? []) expect(await refused(e.url), e.url).toBe(true);
  }, 90_000);

  it('SIGINT during a run: engines and gateway stopped, exit 130', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'kvmgr-live-int-')), 'out');
    const child = spawn(process.execPath, ['--conditions=@kvmgr/source', '--import', 'tsx', BIN, 'live', '--instances', '2', '--limit', '400', '--time-scale', '2', '--no-sim', '--no-progress', '--out', out], {
      cwd: resolve(import.meta.dirname, '..'),
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const killer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    let err = '';
    const urls = await new Promise<string[]>((res, rej) => {
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (t: string) => {
        err += t;
        const m = /engines (.+) behind the gateway at (\S+)/.exec(err);
        if (m) res([...(m[1] as string).split(' '), m[2] as string]);
      });
      void exited.then(() => rej(new Error(`kvmgr live exited early: ${err}`)));
    });
    child.kill('SIGINT');
    const code = await exited;
    clearTimeout(killer);
    expect(code, err).toBe(130);
    expect(err).toContain('SIGINT: stopping the engines and the gateway');
    expect(urls).toHaveLength(3);
    for (const u of urls) expect(await refused(u), u).toBe(true);
  }, 150_000);
});
