/**
 * `kvmgr serve --replicas N`: the executable starts N gateway replicas (processes) behind one
 * port, sharing state through a real `redis-server` (started here on a free loopback port), and
 * stops them all on SIGTERM. Connections are handed to the replicas in turn, so `/health` over
 * fresh connections names every replica; after shutdown no replica process is left and every
 * replica has withdrawn itself from Redis (a clean close, not a kill). Without Redis,
 * `--replicas` is refused with one line and exit code 2.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { RedisLink } from '@kvmgr/router';
import { Agent, request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { type FakeVllm, startFakeVllm } from '../../gateway/test/fixtures/fake-vllm.js';
import { type RedisTestServer, startRedisServer } from '../../router/src/redis-test-server.js';

const BIN = resolve(import.meta.dirname, '../src/bin.ts');
const NODE_ARGS = ['--conditions=@kvmgr/source', '--import', 'tsx', BIN];

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('kvmgr serve --replicas', () => {
  let engine: FakeVllm | undefined;
  let redis: RedisTestServer | undefined;
  let child: ChildProcess | undefined;
  let check: RedisLink | undefined;
  const pids: number[] = [];
  afterAll(async () => {
    if (child !== undefined && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child?.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
    await check?.close();
    await engine?.close();
    await redis?.stop();
  });

  it('is refused without Redis: one line, exit code 2', () => {
    const r = spawnSync(process.execPath, [...NODE_ARGS, 'serve', '--endpoint', 'http://127.0.0.1:1', '--replicas', '2'], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^kvmgr: error: --replicas 2: .*--redis/);
    const z = spawnSync(process.execPath, [...NODE_ARGS, 'serve', '--endpoint', 'http://127.0.0.1:1', '--replicas', '0'], { encoding: 'utf8', timeout: 60_000 });
    expect(z.status).toBe(2);
    expect(z.stderr).toMatch(/--replicas/);
  });

  it('starts 3 replicas behind one port, each serving; stops them all on SIGTERM', async () => {
    engine = await startFakeVllm();
    redis = await startRedisServer();
    child = spawn(process.execPath, [...NODE_ARGS, 'serve', '--endpoint', engine.url, '--port', '0', '--model', 'fake-llama', '--log-level', 'warn', '--redis', redis.url, '--replicas', '3'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const { url, ids } = await new Promise<{ url: string; ids: string[] }>((resolveUrl, reject) => {
      let err = '';
      const timer = setTimeout(() => reject(new Error(`no "listening" line in 90 s; stderr: ${err}`)), 90_000);
      child?.stderr?.on('data', (d: Buffer) => {
        err += d.toString();
        const m = /3 replicas listening on (http:\/\/\S+) .*; replicas (.*); Ctrl-C/.exec(err);
        if (m) {
          clearTimeout(timer);
          resolveUrl({ url: m[1] as string, ids: (m[2] as string).split(', ') });
        }
      });
      child?.once('exit', (code) => reject(new Error(`exited ${code}: ${err}`)));
    });
    expect(ids).toHaveLength(3);
    expect(ids.map((id) => id.slice(-3)).sort()).toEqual(['-r0', '-r1', '-r2']);
    // default replica ids are <hostname>-<pid>-<random>-r<i>: the worker processes
    for (const id of ids) pids.push(Number(/-(\d+)-[0-9a-f]{6}-r\d$/.exec(id)?.[1]));
    expect(pids.every((p) => Number.isInteger(p) && p > 0 && alive(p))).toBe(true);
    expect(new URL(url).hostname).toBe('127.0.0.1');

    // fresh connections are handed to the replicas in turn: every replica answers on the one port
    const seen = new Map<string, number>();
    for (let i = 0; i < 30 && seen.size < 3; i++) {
      const agent = new Agent({ pipelining: 0 });
      const r = await request(`${url}/health`, { dispatcher: agent });
      const body = (await r.body.json()) as { redis?: { replica: string; mode: string } };
      await agent.close();
      const id = body.redis?.replica ?? '';
      seen.set(id, (seen.get(id) ?? 0) + 1);
    }
    expect([...seen.keys()].sort()).toEqual([...ids].sort());
    for (let i = 0; i < 6; i++) {
      const agent = new Agent({ pipelining: 0 });
      const res = await request(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: `hello ${i}`, max_tokens: 2 }), dispatcher: agent });
      expect(res.statusCode).toBe(200);
      await res.body.text();
      await agent.close();
    }
    // the replicas registered in Redis (the heartbeat of each)
    check = new RedisLink({ url: redis.url, commandTimeoutMs: 5000 });
    await check.ready();
    const r = check.redis;
    const members = async () => (await r.zrange('kvmgr:{fake-llama}:replicas', 0, -1)).sort();
    const t0 = Date.now();
    while ((await members()).length < 3) {
      expect(Date.now() - t0).toBeLessThan(10_000);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await members()).toEqual([...ids].sort());

    const exited = new Promise<number | null>((r) => child?.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(pids.filter(alive)).toEqual([]);
    // each replica closed cleanly: withdrawn from the replica set, its in-flight hash gone
    expect(await members()).toEqual([]);
    expect(await r.keys('kvmgr:{fake-llama}:load:*')).toEqual([]);
  });
});
