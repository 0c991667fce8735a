/**
 * An engine server for a Qwen model tokenises with Qwen's tokenizer: completion and chat prompts,
 * `/tokenize`, `/detokenize`, output text, and seeded output tokens inside Qwen's text vocabulary.
 * Known ids: Hugging Face `tokenizers` 0.23.2 on Qwen2.5's `tokenizer.json` (as in
 * adapter-vllm's `tokenizers.test.ts`).
 */
import { getTokenizer } from '@kvmgr/adapter-vllm';
import { isKvmgrError } from '@kvmgr/core';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EngineServer, createEngineServer } from './index.js';

const QWEN = 'Qwen/Qwen2.5-7B-Instruct';
/** `<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n` */
const CHAT_TEXT = '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n';

let server: EngineServer;
let client: OpenAI;

beforeAll(async () => {
  server = await createEngineServer({ model: 'Qwen2.5-7B-Instruct', port: 0, timeScale: 20, numGpuBlocks: 2048 });
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
afterAll(async () => {
  await server.close();
});

async function post(path: string, body: unknown): Promise<unknown> {
  const r = await fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return r.json();
}

describe('engine server: Qwen2.5-7B-Instruct', () => {
  it('derives the qwen2.5 tokenizer from the model', () => {
    expect(server.config.tokenizer).toBe('qwen2.5');
    expect(server.config.servedModelName).toBe(QWEN);
  });

  it('/tokenize: no BOS, known ids (numbers split digit by digit, whitespace runs, non-ASCII)', async () => {
    const a = (await post('/tokenize', { model: QWEN, prompt: 'The year 2024 had 366 days.' })) as { count: number; tokens: number[] };
    expect(a.tokens).toEqual([785, 1042, 220, 17, 15, 17, 19, 1030, 220, 18, 21, 21, 2849, 13]);
    const b = (await post('/tokenize', { prompt: '你好，世界！', add_special_tokens: false })) as { tokens: number[] };
    expect(b.tokens).toEqual([108386, 3837, 99489, 6313]);
    const c = (await post('/tokenize', { prompt: 'a   b\t\tc\n\n\nd  ' })) as { tokens: number[] };
    expect(c.tokens).toEqual([64, 256, 293, 197, 1444, 1406, 67, 256]);
    const chat = (await post('/tokenize', { messages: [{ role: 'user', content: 'Hi there' }] })) as { tokens: number[] };
    expect(chat.tokens).toEqual(getTokenizer('qwen2.5').encode(CHAT_TEXT));
    expect(chat.tokens.slice(0, 3)).toEqual([151644, 8948, 198]); // <|im_start|> system \n
  });

  it('/detokenize: Qwen ids back to text; ids past Qwen’s vocabulary are refused', async () => {
    const d = (await post('/detokenize', { tokens: [108386, 3837, 99489, 6313, 151645] })) as { prompt: string };
    expect(d.prompt).toBe('你好，世界！<|im_end|>');
    const r = await fetch(`${server.url}/detokenize`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ tokens: [151665] }) });
    expect(r.status).toBe(400);
  });

  it('completions and chat: usage counts Qwen tokens; output ids are text tokens and their text is Qwen’s', async () => {
    const c = await client.completions.create({ model: QWEN, prompt: 'Hello world', max_tokens: 24, echo: false });
    expect(c.usage?.prompt_tokens).toBe(2); // [9707, 1879], no BOS
    const chat = await client.chat.completions.create({ model: QWEN, messages: [{ role: 'user', content: 'Hi there' }], max_tokens: 24 });
    expect(chat.usage?.prompt_tokens).toBe(getTokenizer('qwen2.5').encode(CHAT_TEXT).length);
  });

  it('seeded output tokens are Qwen text tokens, and the output text is their Qwen decoding', async () => {
    const ids = new Map<string, number[]>();
    const hooks = server.core.hooks;
    server.core.hooks = {
      ...hooks,
      onToken: (id, tok, now) => {
        hooks.onToken?.(id, tok, now);
        ids.set(id, [...(ids.get(id) ?? []), tok]);
      },
    };
    try {
      const texts: string[] = [];
      for (let i = 0; i < 4; i++) {
        const c = await client.completions.create({ model: QWEN, prompt: `Count ${i}`, max_tokens: 64, seed: i });
        texts.push(c.choices[0]?.text ?? '');
      }
      const all = [...ids.values()];
      expect(all.length).toBe(4);
      const q = getTokenizer('qwen2.5');
      const flat = all.flat();
      expect(flat.length).toBe(256);
      expect(flat.every((t) => t >= 0 && t < 151_643)).toBe(true);
      // drawn over the whole text vocabulary: some ids beyond Llama 3's 128000
      expect(flat.some((t) => t >= 128_000)).toBe(true);
      expect(new Set(all.map((a) => q.decode(a)))).toEqual(new Set(texts));
    } finally {
      server.core.hooks = hooks;
    }
  });

  it('an unknown tokenizer name stops the server from starting, naming the value and the known ones', async () => {
    let err: unknown;
    try {
      await createEngineServer({ model: 'Qwen2.5-7B-Instruct', tokenizer: 'qwen4', port: 0 });
    } catch (e) {
      err = e;
    }
    expect(isKvmgrError(err, 'KVMGR_INVALID_ARGUMENT')).toBe(true);
    expect((err as Error).message).toMatch(/"qwen4".*llama3, llama3\.1, llama3\.2, qwen2, qwen2\.5, qwen3/);
  });
});
