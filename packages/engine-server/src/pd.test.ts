/**
 * P/D disaggregation between two engine servers on loopback (issue #22): the prefill server runs
 * the prompt and answers with `kv_transfer_params`; the decode server, given them, brings the
 * prompt's KV in as remote KV (no prefill of it) and decodes. What each engine computed is read
 * from its own step shapes.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EngineServer, createEngineServer } from './server.js';

let prefill: EngineServer;
let decode: EngineServer;
const computed = new Map<EngineServer, { prefill: number; decode: number }>();

function watch(s: EngineServer): void {
  const c = { prefill: 0, decode: 0 };
  computed.set(s, c);
  s.core.hooks = {
    ...s.core.hooks,
    onStepStats: (st) => {
      c.prefill += st.shape.prefillTokens;
      c.decode += st.shape.decodeTokens;
    },
  };
}

beforeAll(async () => {
  prefill = await createEngineServer({ port: 0, host: '127.0.0.1', timeScale: 50, numGpuBlocks: 512, pd: { role: 'prefill' } });
  decode = await createEngineServer({ port: 0, host: '127.0.0.1', timeScale: 50, numGpuBlocks: 512, pd: { role: 'decode' } });
  watch(prefill);
  watch(decode);
});
afterAll(async () => {
  await prefill?.close();
  await decode?.close();
});

const prompt = Array.from({ length: 640 }, (_, i) => 1000 + ((i * 7919) % 50_000));

describe('P/D roles (kv_transfer_params, as vLLM disaggregated serving)', () => {
  it('the decode leg brings the prompt KV from the prefill leg and computes only the last prompt token', async () => {
    const p = new OpenAI({ baseURL: `${prefill.url}/v1`, apiKey: 'x', maxRetries: 0 });
    const d = new OpenAI({ baseURL: `${decode.url}/v1`, apiKey: 'x', maxRetries: 0 });
    const model = prefill.config.servedModelName;
    const first = (await p.completions.create({ model, prompt, max_tokens: 20, kv_transfer_params: { do_remote_decode: true } } as never)) as unknown as {
      usage: { completion_tokens: number };
      kv_transfer_params: { do_remote_prefill: boolean; remote_block_ids: number[]; remote_port: number };
    };
    // the prefill leg produces one token and says where its blocks are
    expect(first.usage.completion_tokens).toBe(1);
    expect(first.kv_transfer_params.do_remote_prefill).toBe(true);
    expect(first.kv_transfer_params.remote_block_ids).toHaveLength(Math.ceil(prompt.length / 16));
    expect(first.kv_transfer_params.remote_port).toBe(Number(new URL(prefill.url).port));
    expect(computed.get(prefill)?.prefill).toBe(prompt.length);

    const second = await d.completions.create({ model, prompt, max_tokens: 20, kv_transfer_params: first.kv_transfer_params } as never);
    expect(second.usage?.completion_tokens).toBe(20);
    expect(second.usage?.prompt_tokens).toBe(prompt.length);
    const dec = computed.get(decode) as { prefill: number; decode: number };
    expect(dec.prefill).toBe(1); // the last prompt token; the rest came over the link
    expect(dec.decode).toBe(19);
    expect(decode.core.kv.numHeldBlocks).toBe(0);

    // without kv_transfer_params a decode-role server serves a plain request, prefilled in full
    const before = dec.prefill;
    const plain = await d.completions.create({ model, prompt: prompt.map((t) => t + 1), max_tokens: 2 });
    expect(plain.usage?.completion_tokens).toBe(2);
    expect(dec.prefill - before).toBe(prompt.length);
  });

  it('refuses the leg a role does not serve, with an OpenAI error and no state change', async () => {
    const d = new OpenAI({ baseURL: `${decode.url}/v1`, apiKey: 'x', maxRetries: 0 });
    const before = { ...(computed.get(decode) as { prefill: number; decode: number }) };
    await expect(d.completions.create({ model: decode.config.servedModelName, prompt, max_tokens: 4, kv_transfer_params: { do_remote_decode: true } } as never)).rejects.toMatchObject({
      status: 400,
      param: 'kv_transfer_params',
    });
    expect(computed.get(decode)).toEqual(before);
  });
});
