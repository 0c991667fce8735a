import { isKvmgrError } from '@kvmgr/core';
import { describe, expect, it } from 'vitest';
import { resolveGatewayConfig } from './config.js';
import { EmbeddingRequestSchema, resolveEmbeddingsConfig } from './embeddings.js';

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
