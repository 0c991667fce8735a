import { describe, expect, it } from 'vitest';
import { LLAMA3_BOS_TOKEN_ID, chatPromptTokenIds, completionPromptTokenIds, decodeToken, decodeTokens, encodeText, renderChatTemplate } from './tokenizer.js';

describe('tokenizer (Llama 3 vocabulary)', () => {
  it('decodeToken is decodeTokens of one id, for every id of the vocabulary', () => {
    const differ: number[] = [];
    let ascii = 0;
    let multiByte = 0;
    for (let id = 0; id < 128_256; id++) {
      const want = decodeTokens([id]);
      if (decodeToken(id) !== want) differ.push(id);
      if ([...want].every((c) => c.charCodeAt(0) < 0x80)) ascii++;
      else multiByte++;
    }
    expect(differ.slice(0, 10)).toEqual([]);
    // both paths of the fast decode were taken (ASCII tokens, and multi-byte or partial characters)
    expect(Math.min(ascii, multiByte)).toBeGreaterThan(1000);
    // past the vocabulary it fails as the library does
    expect(() => decodeToken(128_256)).toThrow();
    expect(() => decodeTokens([128_256])).toThrow();
  });

  it('encodes text without BOS/EOS to known ids', () => {
    expect(encodeText('hello world')).toEqual([15339, 1917]);
    expect(decodeTokens([15339, 1917])).toBe('hello world');
  });

  it('renders the Llama 3 chat template and tokenises its special tokens', () => {
    const text = renderChatTemplate([{ role: 'user', content: 'hi' }]);
    expect(text).toBe('<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n');
    expect(chatPromptTokenIds([{ role: 'user', content: 'hi' }])).toEqual([128000, 128006, 882, 128007, 271, 6151, 128009, 128006, 78191, 128007, 271]);
  });

  it('joins text content parts and skips other parts', () => {
    const a = chatPromptTokenIds([{ role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'image_url', image_url: { url: 'x' } }, { type: 'text', text: 'b' }] }]);
    expect(a).toEqual(chatPromptTokenIds([{ role: 'user', content: 'a\nb' }]));
  });

  it('a longer conversation extends the shorter one token for token (what makes multi-turn prefixes cacheable)', () => {
    const m1 = [{ role: 'system' as const, content: 'You are terse.' }, { role: 'user' as const, content: 'one' }];
    const short = chatPromptTokenIds(m1);
    const long = chatPromptTokenIds([...m1, { role: 'assistant', content: 'two' }, { role: 'user', content: 'three' }]);
    // the shorter prompt ends with the generation header; the longer one has the assistant header there too
    expect(long.slice(0, short.length)).toEqual(short);
  });

  it('completion prompts: string gets BOS, token ids pass as they are, lists give one entry each', () => {
    expect(completionPromptTokenIds('hello world')).toEqual([[LLAMA3_BOS_TOKEN_ID, 15339, 1917]]);
    expect(completionPromptTokenIds([5, 6, 7])).toEqual([[5, 6, 7]]);
    expect(completionPromptTokenIds(['hello', 'world'])).toEqual([[LLAMA3_BOS_TOKEN_ID, 15339], [LLAMA3_BOS_TOKEN_ID, 14957]]);
    expect(completionPromptTokenIds([[1, 2], [3]])).toEqual([[1, 2], [3]]);
  });
});
