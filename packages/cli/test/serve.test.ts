/**
 * `kvmgr serve`: the configuration a command line makes (flags over the file), one-line config
 * errors with exit code 2, and the executable serving an OpenAI request end to end in front of
 * the gateway's stand-in engine (packages/gateway/test/fixtures/fake-vllm.ts).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { isKvmgrError } from '@kvmgr/core';
import { afterAll, describe, expect, it } from 'vitest';
import { type FakeVllm, startFakeVllm } from '../../gateway/test/fixtures/fake-vllm.js';
import { serveConfig } from '../src/serve.js';

const BIN = resolve(import.meta.dirname, '../src/bin.ts');
const NODE_ARGS = ['--conditions=@kvmgr/source', '--import', 'tsx', BIN];

describe('kvmgr serve: configuration', () => {
  const file = (text: string) => () => text;

  it('flags override the file; --endpoint replaces its endpoints', () => {
    const yaml = 'server: { port: 9000, host: 127.0.0.2 }\nmodel: m\nendpoints:\n  - url: http://127.0.0.3:8000\nrouting: pa:1\n';
    const c = serveConfig({ config: 'gw.yaml', port: 0, endpoint: ['http://127.0.0.1:1', 'http://127.0.0.1:2'], routing: 'kv:2' }, file(yaml));
    expect(c.port).toBe(0);
    expect(c.host).toBe('127.0.0.2');
    expect(c.model).toBe('m');
    expect(c.endpoints.map((e) => e.url)).toEqual(['http://127.0.0.1:1', 'http://127.0.0.1:2']);
    expect(c.routing.scorers.map((s) => `${s.name}:${s.weight}`)).toEqual(['kv-utilization:2']);
    expect(serveConfig({ config: 'gw.yaml' }, file(yaml)).routing.scorers.map((s) => s.name)).toEqual(['prefix-affinity']);
  });

  it('errors name the file and the key, on one line', () => {
    const err = (o: Parameters<typeof serveConfig>[0], text = '') => {
      try {
        serveConfig(o, file(text));
      } catch (e) {
        expect(isKvmgrError(e, 'KVMGR_BAD_CONFIG')).toBe(true);
        expect((e as Error).message).not.toContain('\n');
        return (e as Error).message;
      }
      throw new Error('expected an error');
    };
    expect(err({ config: 'gw.yaml' }, 'endpoints:\n  - url: http://a:1\nrouting: pa:3,zz:1\n')).toMatch(/^gw\.yaml: routing: .*"zz:1".*unknown scorer/);
    expect(err({ config: 'gw.yaml' }, 'endpoints:\n  - url: http://a:1\n  - url: http://a:1\n')).toMatch(/^gw\.yaml: endpoints\[1\]\.url: duplicate endpoint/);
    expect(err({ endpoint: ['http://a:1'], routing: 'qd:-1' })).toMatch(/^routing: .*weight must be a finite number >= 0/);
    expect(err({ port: 1 })).toMatch(/^endpoints: no endpoint/);
  });
});

describe('kvmgr serve: the executable', () => {
  let engine: FakeVllm | undefined;
  let child: ChildProcess | undefined;
  afterAll(async () => {
    if (child !== undefined && child.exitCode === null) {
      const exited = new Promise((r) => child?.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    await engine?.close();
  });

  it('a bad config file stops startup with one line on stderr and exit code 2', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvmgr-serve-'));
    const path = join(dir, 'gateway.yaml');
    writeFileSync(path, 'endpoints:\n  - url: http://127.0.0.1:1\nrouting:\n  scorers: { pa: 3, qd: -2 }\n');
    const r = spawnSync(process.execPath, [...NODE_ARGS, 'serve', '--config', path], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^kvmgr: error: .*gateway\.yaml: routing\.scorers\.qd: /);
  });

  it('serves /v1/completions in front of an engine and stops on SIGTERM', async () => {
    engine = await startFakeVllm();
    child = spawn(process.execPath, [...NODE_ARGS, 'serve', '--endpoint', engine.url, '--port', '0', '--model', 'fake-llama', '--log-level', 'warn'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const url = await new Promise<string>((resolveUrl, reject) => {
      let err = '';
      const timer = setTimeout(() => reject(new Error(`no "listening" line in 60 s; stderr: ${err}`)), 60_000);
      child?.stderr?.on('data', (d: Buffer) => {
        err += d.toString();
        const m = /listening on (http:\/\/\S+) /.exec(err);
        if (m) {
          clearTimeout(timer);
          resolveUrl(m[1] as string);
        }
      });
      child?.once('exit', (code) => reject(new Error(`exited ${code}: ${err}`)));
    });
    const res = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'hello', max_tokens: 2 }) });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { choices: { text: string }[] };
    expect(body.choices[0]?.text).toBe(' w0 w1');
    const exited = new Promise<number | null>((r) => child?.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});
