import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Gateway, createGateway } from '../src/index.js';
import { LogSink } from './helpers.js';

const MODEL = 'meta-llama/Llama-3.1-8B-Instruct';
const METRICS = `vllm:num_requests_running{model_name="${MODEL}",engine="0"} 0
vllm:num_requests_waiting{model_name="${MODEL}",engine="0"} 0
vllm:kv_cache_usage_perc{model_name="${MODEL}",engine="0"} 0
vllm:cache_config_info{block_size="16",enable_prefix_caching="True",num_gpu_blocks="4096",engine="0"} 1
vllm:prefix_cache_queries_total{model_name="${MODEL}",engine="0"} 0
vllm:prefix_cache_hits_total{model_name="${MODEL}",engine="0"} 0
`;

/** A node:http engine stand-in that answers every completion with `status` (and counts them). */
function upstream(status: number): { server: Server; hits: () => number } {
  let hits = 0;
  const server = createServer((req, res) => {
    if (req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
      res.end(req.url === '/metrics' ? METRICS : '');
      return;
    }
    req.resume();
    req.on('end', () => {
      hits++;
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(
        status === 200
          ? JSON.stringify({ id: 'cmpl-1', object: 'text_completion', created: 0, model: MODEL, choices: [{ index: 0, text: ' ok', logprobs: null, finish_reason: 'length' }], usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } })
          : JSON.stringify({ error: { message: `engine says ${status}`, type: 'server_error', code: status } }),
      );
    });
  });
  return { server, hits: () => hits };
}

async function listen(s: Server): Promise<string> {
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

async function close(s: Server): Promise<void> {
  await new Promise<void>((r) => {
    s.closeAllConnections();
    s.close(() => r());
  });
}

/**
 * An engine that answers 502/503/504 before any byte reached the client: the request is retried
 * on another endpoint; with none left, the engine's own status and body reach the client (the
 * gateway does not turn it into a 502 of its own).
 */
describe('upstream 503', () => {
  const busy = upstream(503);
  const fine = upstream(200);
  const log = new LogSink();
  let both: Gateway;
  let alone: Gateway;

  beforeAll(async () => {
    const [b, f] = [await listen(busy.server), await listen(fine.server)];
    // round-robin: the first request goes to the first endpoint, the busy one
    both = await createGateway(
      { server: { port: 0 }, model: MODEL, routing: { strategy: 'round-robin' }, endpoints: [{ name: 'busy', url: b }, { name: 'fine', url: f }] },
      { logStream: log },
    );
    alone = await createGateway({ server: { port: 0, logLevel: 'silent' }, model: MODEL, endpoints: [{ name: 'busy', url: b }] }, { logStream: { write: () => true } });
  });

  afterAll(async () => {
    await both?.close();
    await alone?.close();
    await close(busy.server);
    await close(fine.server);
  });

  it('is retried on the other endpoint before the first byte; the log line lists both attempts', async () => {
    const client = new OpenAI({ baseURL: `${both.url}/v1`, apiKey: 'x', maxRetries: 0 });
    const before = busy.hits();
    const { data, response } = await client.completions.create({ model: MODEL, prompt: 'Hello there', max_tokens: 1 }, { headers: { 'x-request-id': 'retry-503' } }).withResponse();
    expect(data.choices[0]?.text).toBe(' ok');
    expect(response.headers.get('x-kvmgr-endpoint')).toBe('fine');
    expect(busy.hits()).toBe(before + 1);
    const line = log.request('retry-503');
    expect(line?.['status']).toBe(200);
    const attempts = (line?.['attempts'] ?? []) as { endpoint: string }[];
    expect(attempts.map((a) => a.endpoint)).toEqual(['busy', 'fine']);
  });

  it('with no other endpoint, the engine’s 503 and its body reach the client', async () => {
    const client = new OpenAI({ baseURL: `${alone.url}/v1`, apiKey: 'x', maxRetries: 0 });
    const err = await client.completions.create({ model: MODEL, prompt: 'Hello there', max_tokens: 1 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
    expect((err as InstanceType<typeof OpenAI.APIError>).message).toContain('engine says 503');
  });
});
