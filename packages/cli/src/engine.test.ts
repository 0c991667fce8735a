/**
 * `kvmgr engine` as a user runs it: a child process on the sources listening on 127.0.0.1 port 0,
 * a completion through it, then SIGTERM: a graceful exit with code 0.
 */
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fleetMemberArgs } from './engine.js';

const BIN = resolve(import.meta.dirname, 'bin.ts');
const ARGS = ['--conditions=@kvmgr/source', '--import', 'tsx', BIN];

describe('kvmgr engine', () => {
  it('serves completions, logs JSON lines, and exits 0 on SIGTERM', async () => {
    const child = spawn(process.execPath, [...ARGS, 'engine', '--port', '0', '--time-scale', '20', '--num-gpu-blocks', '128'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const exit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      let stderr = '';
      let stdout = '';
      child.stdout.on('data', (d) => (stdout += d));
      const url = await new Promise<string>((res, rej) => {
        child.stderr.on('data', (d) => {
          stderr += d;
          const m = /listening on (http:\/\/\S+?),? /.exec(stderr) ?? /listening on (http:\/\/[^\s,;]+)/.exec(stderr);
          if (m) res((m[1] as string).replace(/[;,]$/, ''));
        });
        child.once('exit', (code) => rej(new Error(`exited ${code}: ${stderr}`)));
      });
      const r = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'hi', max_tokens: 3 }) });
      expect(r.status).toBe(200);
      expect(((await r.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens).toBe(3);
      child.kill('SIGTERM');
      expect(await exit).toBe(0);
      const lines = stdout.split('\n').filter((l) => l.trim() !== '');
      expect(lines.length).toBeGreaterThan(0);
      for (const l of lines) expect(() => JSON.parse(l)).not.toThrow();
      expect(lines.some((l) => (JSON.parse(l) as { reqId?: string }).reqId !== undefined)).toBe(true);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });

  it('fleet members get their own port and KV-event ports shifted by their index', () => {
    const args = fleetMemberArgs(['--model', 'Llama-3.1-8B-Instruct', '--instances', '3', '--base-port=9000', '--time-scale', '5'], 2, 9000, '{"enable_kv_cache_events":true,"endpoint":"tcp://*:5557","replay_endpoint":"tcp://*:5558"}');
    expect(args.slice(0, 4)).toEqual(['--model', 'Llama-3.1-8B-Instruct', '--time-scale', '5']);
    expect(args.slice(4, 6)).toEqual(['--port', '9002']);
    const cfg = JSON.parse(args[7] as string) as { endpoint: string; replay_endpoint: string };
    expect(cfg.endpoint).toBe('tcp://*:5559');
    expect(cfg.replay_endpoint).toBe('tcp://*:5560');
  });
});
