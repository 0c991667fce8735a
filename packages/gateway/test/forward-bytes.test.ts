import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Gateway, createGateway } from '../src/index.js';

const MODEL = 'meta-llama/Llama-3.1-8B-Instruct';
const METRICS = `vllm:num_requests_running{model_name="${MODEL}",engine="0"} 0
vllm:num_requests_waiting{model_name="${MODEL}",engine="0"} 0
vllm:kv_cache_usage_perc{model_name="${MODEL}",engine="0"} 0
vllm:cache_config_info{block_size="16",enable_prefix_caching="True",num_gpu_blocks="4096",engine="0"} 1
vllm:prefix_cache_queries_total{model_name="${MODEL}",engine="0"} 0
vllm:prefix_cache_hits_total{model_name="${MODEL}",engine="0"} 0
`;

/**
 * The gateway forwards the client's JSON bytes as they came (it no longer serialises the parsed
 * body again): whitespace, key order, unicode escapes and unknown fields reach the engine as the
 * client wrote them. A bare node:http upstream records what it receives; the client sends raw
 * bytes (the `openai` SDK writes its own compact JSON, which could not show the difference).
 */
describe('gateway forwards request bytes unchanged', () => {
  const received: Buffer[] = [];
  let upstream: Server;
  let gw: Gateway;

  beforeAll(async () => {
    upstream = createServer((req, res) => {
      if (req.method === 'GET') {
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
        res.end(req.url === '/metrics' ? METRICS : '');
        return;
      }
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push(Buffer.concat(chunks));
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            id: 'cmpl-1',
            object: 'text_completion',
            created: 0,
            model: MODEL,
            choices: [{ index: 0, text: ' ok', logprobs: null, finish_reason: 'length' }],
            usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 },
          }),
        );
      });
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    gw = await createGateway({ server: { port: 0, logLevel: 'silent' }, model: MODEL, endpoints: [{ name: 'u', url }] }, { logStream: { write: () => true } });
  });

  afterAll(async () => {
    await gw?.close();
    await new Promise<void>((r) => {
      upstream.closeAllConnections();
      upstream.close(() => r());
    });
  });

  it('the engine receives the exact bytes of a completion and of a chat request', async () => {
    const bodies = [
      `{ "model" : "${MODEL}",\n  "max_tokens":1, "prompt": "caf\\u00e9 au lait",  "vendor_field": {"b": [1, 2.50], "a": null} }`,
      `{"messages":[{"role":"user","content":"hi"}],"model":"${MODEL}","max_tokens":2,"x":1e3}`,
    ];
    const paths = ['/v1/completions', '/v1/chat/completions'];
    for (let i = 0; i < bodies.length; i++) {
      const res = await fetch(`${gw.url}${paths[i]}`, { method: 'POST', headers: { 'content-type': 'application/json; charset=utf-8' }, body: bodies[i] as string });
      expect(res.status).toBe(200);
      await res.arrayBuffer();
      expect(received[i]?.toString('utf8')).toBe(bodies[i]);
    }
  });

  it('a body with a __proto__ key is still refused with 400 and not forwarded', async () => {
    const before = received.length;
    const res = await fetch(`${gw.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: `{"model":"${MODEL}","prompt":"x","__proto__":{"polluted":true}}` });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { message: string } };
    expect(typeof body.error.message).toBe('string');
    expect(received.length).toBe(before);
  });
});
