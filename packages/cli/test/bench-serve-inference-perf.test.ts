/**
 * `bench serve` with inference-perf configs beyond the basics: `load.type: trace_replay` with
 * `data.type: random` + `data.trace` (send times and lengths from an Azure CSV), `shareGPT` from a
 * local file over `/v1/chat/completions`, `mock` not streamed; and token-id traces sent as text
 * (`--prompt-format text`) keeping their lengths and prefix sharing. Against a real engine server
 * (time scale 50) on 127.0.0.1.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeText } from '@kvmgr/adapter-vllm';
import { type EngineServer, createEngineServer } from '@kvmgr/engine-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { runBenchServeCommand } from '../src/bench-serve/command.js';
import { readInferencePerfConfig, sampleLength } from '../src/bench-serve/inference-perf.js';
import { promptText } from '../src/bench-serve/text-prompt.js';
import { blockTokens } from '../src/bench-serve/workload.js';

const json = (dir: string, name: string) => JSON.parse(readFileSync(join(dir, name), 'utf8'));
type PerRequest = Array<{ request: string; response: string; info: { input_tokens: number; output_tokens: number; output_token_times: number[]; extra_info: { cached_tokens: number | null; time_to_first_token: number | null } }; error: unknown }>;

let engine: EngineServer;
beforeAll(async () => {
  engine = await createEngineServer({ host: '127.0.0.1', port: 0, timeScale: 50 });
});
afterAll(async () => {
  await engine?.close();
});

const dir = mkdtempSync(join(tmpdir(), 'kvmgr-bench-ip2-'));
const AZURE = ['TIMESTAMP,ContextTokens,GeneratedTokens', '2023-11-16 18:15:00.000000,100,5', '2023-11-16 18:15:00.250000,200,7', '2023-11-16 18:15:01.000000,150,6', '2023-11-16 18:15:01.500000,120,4', ''].join('\n');
writeFileSync(join(dir, 'trace.csv'), AZURE);

describe('inference-perf config: trace_replay', () => {
  const cfg = (extra: string) =>
    ['api: { type: completion, streaming: true }', 'data:', '  type: random', extra, 'load:', '  type: trace_replay', '  interval: 0', '  trace: { file: trace.csv, format: AzurePublicDataset }', '  stages: [ { rate: 1, duration: 3 }, { rate: 1, duration: 30 } ]', ''].join('\n');

  it('send times are the trace offsets, each stage replays it; data.trace gives the lengths', () => {
    const w = readInferencePerfConfig(cfg('  trace: { file: trace.csv, format: AzurePublicDataset }'), join(dir, 'config.yml'), 1).workload;
    // data.trace: every stage sends the trace's 4 rows
    expect(w.requests.map((r) => [r.stage, r.atS, r.promptTokens, r.outputTokens])).toEqual([
      [0, 0, 100, 5],
      [0, 0.25, 200, 7],
      [0, 1, 150, 6],
      [0, 1.5, 120, 4],
      [1, 0, 100, 5],
      [1, 0.25, 200, 7],
      [1, 1, 150, 6],
      [1, 1.5, 120, 4],
    ]);
    expect(w.stream).toBe(true);
  });

  it('without data.trace: rate × duration requests, at most the trace rows, lengths from the distributions', () => {
    const w = readInferencePerfConfig(cfg('  input_distribution: { type: fixed, mean: 64 }\n  output_distribution: { type: fixed, mean: 3 }'), join(dir, 'config.yml'), 1).workload;
    expect(w.requests.filter((r) => r.stage === 0).map((r) => r.atS)).toEqual([0, 0.25, 1]);
    expect(w.requests.filter((r) => r.stage === 1)).toHaveLength(4);
    expect(new Set(w.requests.map((r) => `${r.promptTokens}/${r.outputTokens}`))).toEqual(new Set(['64/3']));
  });

  it('a missing trace is one line naming the key', () => {
    expect(() => readInferencePerfConfig(cfg('').replace('trace.csv', 'nope.csv'), join(dir, 'config.yml'), 1)).toThrow(/config\.yml: load\.trace\.file nope\.csv: no such file/);
    expect(() => readInferencePerfConfig('data: { type: random }\nload: { type: trace_replay, stages: [ { rate: 1, duration: 1 } ] }\n', 'c.yml', 1)).toThrow(/c\.yml: load\.trace: trace_replay needs load\.trace\.file/);
    expect(() => readInferencePerfConfig('data: { type: cnn_dailymail }\nload: { stages: [ { rate: 1, duration: 1 } ] }\n', 'c.yml', 1)).toThrow(/c\.yml: data\.type: .*supported: data\.type shared_prefix \| random \| synthetic \| mock \| shareGPT/);
  });

  it('runs against a server: 8 requests, lengths and stages as configured', async () => {
    const file = join(dir, 'replay.yml');
    writeFileSync(file, cfg('  trace: { file: trace.csv, format: AzurePublicDataset }'));
    const out = join(dir, 'out-replay');
    await runBenchServeCommand({ target: engine.url, config: file, timeScale: 50, out, progress: false }, { out: () => {} });
    const s = json(out, 'summary_lifecycle_metrics.json');
    expect(s.successes.count).toBe(8);
    expect(json(out, 'stage_1_lifecycle_metrics.json').load_summary.count).toBe(4);
    const pr = json(out, 'per_request_lifecycle_metrics.json') as PerRequest;
    expect(pr.map((r) => r.info.input_tokens).sort((a, b) => a - b)).toEqual([100, 100, 120, 120, 150, 150, 200, 200]);
    expect(pr.map((r) => r.info.output_tokens).reduce((a, b) => a + b, 0)).toBe(2 * (5 + 7 + 6 + 4));
    expect(parseYaml(readFileSync(join(out, 'config.yaml'), 'utf8')).load.type).toBe('trace_replay');
  }, 60_000);
});

describe('distributions', () => {
  it('fixed, uniform, normal and lognormal stay in [min, max]; fixed is the mean', async () => {
    const { createRng } = await import('@kvmgr/core');
    const rng = createRng(5);
    const base = { min: 10, max: 50, mean: 30, std_dev: 10 };
    expect(sampleLength(rng, { ...base, type: 'fixed' })).toBe(30);
    for (const type of ['uniform', 'normal', 'lognormal'] as const) {
      const xs = Array.from({ length: 500 }, () => sampleLength(rng, { ...base, type }));
      expect(Math.min(...xs), type).toBeGreaterThanOrEqual(10);
      expect(Math.max(...xs), type).toBeLessThanOrEqual(50);
      expect(new Set(xs).size, type).toBeGreaterThan(10);
      const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
      expect(Math.abs(mean - 30), type).toBeLessThan(4);
    }
  });
});

describe('chat, text prompts and non-streamed requests', () => {
  it('shareGPT from a local file, over /v1/chat/completions, streamed: lengths from the conversations', async () => {
    const convs = [
      { id: 'a', conversations: [{ from: 'human', value: 'Tell me about the sea.' }, { from: 'gpt', value: 'The sea is large and deep and full of fish.' }] },
      { id: 'b', conversations: [{ from: 'human', value: 'Only one turn' }] },
      { id: 'c', conversations: [{ from: 'human', value: 'What is a cat?' }, { from: 'gpt', value: 'A small animal.' }] },
    ];
    writeFileSync(join(dir, 'sharegpt.json'), JSON.stringify(convs));
    const file = join(dir, 'sharegpt.yml');
    writeFileSync(file, ['api: { type: chat, streaming: true }', 'data: { type: shareGPT, path: sharegpt.json }', 'load: { type: constant, interval: 0, stages: [ { rate: 20, duration: 0.2 } ] }', ''].join('\n'));
    const out = join(dir, 'out-sharegpt');
    await runBenchServeCommand({ target: engine.url, config: file, timeScale: 50, out, progress: false }, { out: () => {} });
    const pr = json(out, 'per_request_lifecycle_metrics.json') as PerRequest;
    expect(pr).toHaveLength(4);
    expect(pr.every((r) => r.error === null)).toBe(true);
    const sent = pr.map((r) => JSON.parse(r.request) as { messages: Array<{ role: string; content: string }>; max_tokens: number });
    expect(new Set(sent.map((b) => b.messages[0]?.content))).toEqual(new Set(['Tell me about the sea.', 'What is a cat?']));
    for (const [i, b] of sent.entries()) {
      const want = b.messages[0]?.content === 'What is a cat?' ? encodeText('A small animal.').length : encodeText('The sea is large and deep and full of fish.').length;
      expect(b.max_tokens).toBe(want);
      // one chunk per token: the chat's opening role chunk is not a token
      expect((pr[i] as PerRequest[number]).info.output_tokens).toBe(want);
      expect((pr[i] as PerRequest[number]).info.output_token_times).toHaveLength(want);
    }
    expect(parseYaml(readFileSync(join(out, 'config.yaml'), 'utf8')).api).toMatchObject({ type: 'chat', streaming: true });
  }, 60_000);

  it('mock data, not streamed (inference-perf default): usage counts, no TTFT', async () => {
    const file = join(dir, 'mock.yml');
    writeFileSync(file, 'load: { type: constant, interval: 0, stages: [ { rate: 20, duration: 0.25 } ] }\n');
    const out = join(dir, 'out-mock');
    await runBenchServeCommand({ target: engine.url, config: file, timeScale: 50, out, progress: false }, { out: () => {} });
    const s = json(out, 'summary_lifecycle_metrics.json');
    expect(s.successes.count).toBe(5);
    expect(s.successes.latency.time_to_first_token).toBeNull();
    expect(s.successes.latency.request_latency.median).toBeGreaterThan(0);
    const pr = json(out, 'per_request_lifecycle_metrics.json') as PerRequest;
    expect(pr.map((r) => JSON.parse(r.request).prompt).sort()).toEqual(['1 2 3 1', '1 2 3 2', '1 2 3 3', '1 2 3 4', '1 2 3 5']);
    // BOS + "1 2 3 i": the server's count comes back through usage
    for (const r of pr) expect(r.info.input_tokens).toBe(1 + encodeText(JSON.parse(r.request).prompt).length);
    expect(pr.every((r) => r.info.output_tokens === 16 && r.info.output_token_times.length === 0)).toBe(true);
    expect(s.successes.slo_metrics.combined_slo.requests_met).toBe(5);
  }, 60_000);

  it('--prompt-format text: a Mooncake prompt as words, one token per id, prefix sharing kept', async () => {
    const ids = blockTokens(1, 42, 300);
    expect(encodeText(promptText(ids))).toHaveLength(300);
    expect(promptText(ids.slice(0, 100))).toBe(promptText(ids).slice(0, promptText(ids.slice(0, 100)).length));
    const out = join(dir, 'out-text');
    let stdout = '';
    await runBenchServeCommand({ target: engine.url, limit: 12, timeScale: 50, promptFormat: 'text', out, progress: false }, { out: (t) => (stdout += t) });
    const pr = json(out, 'per_request_lifecycle_metrics.json') as PerRequest;
    const trace = readFileSync(join(import.meta.dirname, '../data/mooncake-conversation-sample.jsonl'), 'utf8')
      .split('\n')
      .slice(0, 12)
      .map((l) => JSON.parse(l) as { input_length: number });
    // BOS + one token per word
    expect(pr.map((r) => r.info.input_tokens).sort((a, b) => a - b)).toEqual(trace.map((t) => t.input_length + 1).sort((a, b) => a - b));
    expect(typeof JSON.parse((pr[0] as PerRequest[number]).request).prompt).toBe('string');
    expect(Math.max(...pr.map((r) => r.info.extra_info.cached_tokens ?? 0))).toBeGreaterThanOrEqual(496);
    expect(stdout).toMatch(/requests completed\s+12/);
  }, 60_000);
});
