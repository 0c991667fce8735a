/**
 * `kvmgr engine` as a user runs it: a child process on the sources listening on 127.0.0.1 port 0,
 * a completion through it, then SIGTERM: a graceful exit with code 0.
 */
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { engineServerOptions, fleetMemberArgs } from './engine.js';
import { gatewayConfigFromFlags } from './serve.js';

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

  it('--model Qwen2.5-7B-Instruct tokenises with Qwen’s tokenizer (banner, /tokenize)', async () => {
    const child = spawn(process.execPath, [...ARGS, 'engine', '--model', 'Qwen2.5-7B-Instruct', '--port', '0', '--time-scale', '20', '--num-gpu-blocks', '128', '--log-level', 'silent'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const exit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      let stderr = '';
      const url = await new Promise<string>((res, rej) => {
        child.stderr.on('data', (d) => {
          stderr += d;
          const m = /listening on (http:\/\/[^\s,;]+)/.exec(stderr);
          if (m) res(m[1] as string);
        });
        child.once('exit', (code) => rej(new Error(`exited ${code}: ${stderr}`)));
      });
      expect(stderr).toContain('tokenizer qwen2.5');
      const t = await fetch(`${url}/tokenize`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'Hello world' }) });
      // Qwen2.5 ids of "Hello world", no BOS (Hugging Face tokenizers on Qwen2.5's tokenizer.json)
      expect(((await t.json()) as { tokens: number[] }).tokens).toEqual([9707, 1879]);
      child.kill('SIGTERM');
      expect(await exit).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });

  it('--tokenizer reaches the engine server options and the gateway configuration', () => {
    expect(engineServerOptions({ model: 'Qwen2.5-7B-Instruct', tokenizer: 'qwen3' }).tokenizer).toBe('qwen3');
    expect(engineServerOptions({ model: 'Qwen2.5-7B-Instruct' }).tokenizer).toBeUndefined();
    const none = () => '';
    expect(gatewayConfigFromFlags({ model: 'Qwen/Qwen2.5-7B-Instruct', endpoint: ['http://127.0.0.1:8000'] }, none).tokenizer).toBe('qwen2.5');
    expect(gatewayConfigFromFlags({ model: 'Qwen/Qwen2.5-7B-Instruct', tokenizer: 'llama3', endpoint: ['http://127.0.0.1:8000'] }, none).tokenizer).toBe('llama3');
    expect(() => gatewayConfigFromFlags({ tokenizer: 'gpt2', endpoint: ['http://127.0.0.1:8000'] }, none)).toThrow(/tokenizer: unknown tokenizer "gpt2"/);
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
