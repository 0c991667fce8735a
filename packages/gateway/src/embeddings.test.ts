import { isKvmgrError } from '@kvmgr/core';
import { describe, expect, it } from 'vitest';
import { resolveGatewayConfig } from './config.js';
import { getTokenizer } from '@kvmgr/adapter-vllm';
import { EmbeddingRequestSchema, embeddingInputTokens, resolveEmbeddingsConfig } from './embeddings.js';

function badKey(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (isKvmgrError(e) && e.code === 'KVMGR_BAD_CONFIG') return e.message;
    throw e;
  }
  throw new Error('did not throw');
}

describe('resolveEmbeddingsConfig', () => {
  it('defaults', () => {
    const c = resolveEmbeddingsConfig({});
    expect(c).toMatchObject({ endpoints: [], totalTokens: null, blockTokens: 16, llmMinFraction: 0.25, embeddingMinFraction: 0.1, rebalanceMs: 250, maxStepFraction: 0.1, maxQueue: 256 });
    expect(resolveGatewayConfig({}).embeddings).toBeUndefined();
    expect(resolveGatewayConfig({ embeddings: { endpoints: ['http://127.0.0.1:8000/'] } }).embeddings?.endpoints).toEqual(['http://127.0.0.1:8000']);
  });

  it('errors name the key', () => {
    expect(badKey(() => resolveEmbeddingsConfig({ quota: { llmMinFraction: 1.5 } }))).toMatch(/^embeddings\.quota\.llmMinFraction: /);
    expect(badKey(() => resolveEmbeddingsConfig({ quota: { llmMinFraction: 0.6, embeddingMinFraction: 0.5 } }))).toMatch(/^embeddings\.quota\.embeddingMinFraction: .*at most 1/);
    expect(badKey(() => resolveEmbeddingsConfig({ endpoints: ['ftp://x'] }))).toMatch(/^embeddings\.endpoints\[0\]: /);
    expect(badKey(() => resolveEmbeddingsConfig({ quota: { totalTokens: 0 } }))).toMatch(/^embeddings\.quota\.totalTokens: /);
    expect(badKey(() => resolveGatewayConfig({ embeddings: { nope: 1 } }))).toMatch(/^embeddings: .*nope/);
    expect(badKey(() => resolveEmbeddingsConfig({ tokenizer: 'bert' }))).toMatch(/^embeddings\.tokenizer: unknown tokenizer "bert": expected one of llama3, /);
  });

  it('tokenizer: null means the gateway\'s; a name is kept', () => {
    expect(resolveEmbeddingsConfig({}).tokenizer).toBeNull();
    expect(resolveEmbeddingsConfig({ tokenizer: 'qwen2.5' }).tokenizer).toBe('qwen2.5');
  });
});

describe('embeddingInputTokens', () => {
  const llama = getTokenizer('llama3.1');
  const qwen = getTokenizer('qwen2.5');
  // a text on which the two vocabularies disagree (Qwen splits these digits one by one, Llama 3 in threes)
  const text = 'Invoice 1234567890 for the Zürich office, 2026-12-07.';
  it('counts text with the given tokenizer, without BOS', () => {
    expect(embeddingInputTokens(text, llama)).toBe(llama.encode(text).length);
    expect(embeddingInputTokens(text, qwen)).toBe(qwen.encode(text).length);
    expect(llama.encode(text).length).not.toBe(qwen.encode(text).length);
    expect(embeddingInputTokens([text, 'x'], qwen)).toBe(qwen.encode(text).length + qwen.encode('x').length);
  });
  it('counts token ids as they are, whatever the tokenizer', () => {
    expect(embeddingInputTokens([5, 6, 7], qwen)).toBe(3);
    expect(embeddingInputTokens([[5, 6], [7]], llama)).toBe(3);
  });
});

describe('EmbeddingRequestSchema', () => {
  it('takes the four OpenAI input forms and keeps unknown fields', () => {
    for (const input of ['a', ['a', 'b'], [1, 2, 3], [[1, 2], [3]]]) expect(EmbeddingRequestSchema.safeParse({ model: 'm', input }).success).toBe(true);
    expect(EmbeddingRequestSchema.parse({ model: 'm', input: 'a', extra: 1 })).toMatchObject({ extra: 1 });
  });
  it('refuses empty or mistyped input', () => {
    for (const input of ['', [], [''], [-1], [[]], 5, null]) expect(EmbeddingRequestSchema.safeParse({ model: 'm', input }).success).toBe(false);
    expect(EmbeddingRequestSchema.safeParse({ model: 'm', input: 'a', encoding_format: 'int8' }).success).toBe(false);
  });
});
