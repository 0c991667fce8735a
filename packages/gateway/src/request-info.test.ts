/**
 * The gateway's reading of a chat request's chat-template fields: a variable the template reads
 * that kvmgr's renderer does not model is left out of the predicted prompt (the engine renders the
 * real one, so the request is routed, not refused); what vLLM refuses too is a 400 naming the field.
 */
import { Buffer } from 'node:buffer';
import { type ChatTool, getTokenizer, markRequestToolsJson } from '@kvmgr/adapter-vllm';
import { describe, expect, it } from 'vitest';
import { readRequest } from './request-info.js';

const llama31 = getTokenizer('llama3.1');
const messages = [
  { role: 'system' as const, content: 'You answer with one word.' },
  { role: 'user' as const, content: 'Which city hosts the Louvre?' },
];

describe('readRequest: chat-template fields', () => {
  it('routes on the prompt without a variable kvmgr does not model (Llama 3.1 builtin_tools), the others kept', () => {
    const kw = { builtin_tools: ['brave_search'], date_string: '02 Feb 2030' };
    const r = readRequest('chat', { model: 'm', messages, chat_template_kwargs: kw }, {}, 16, llama31);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.info.tokenIds).toEqual(llama31.chatPromptTokenIds(messages, { chat_template_kwargs: { date_string: '02 Feb 2030' } }));
    // date_string is rendered: the prompt differs from one without kwargs
    expect(r.info.tokenIds).not.toEqual(llama31.chatPromptTokenIds(messages));
    // the body forwarded to the engine keeps every field
    expect(r.info.body['chat_template_kwargs']).toEqual(kw);
  });

  it.each([
    ['a date_string that is not a string', { chat_template_kwargs: { date_string: 5 } }, 'chat_template_kwargs.date_string'],
    ['chat_template_kwargs.tokenize', { chat_template_kwargs: { tokenize: true } }, 'chat_template_kwargs.tokenize'],
    ['both flags true', { add_generation_prompt: true, continue_final_message: true }, 'continue_final_message'],
    ['add_generation_prompt not a boolean', { add_generation_prompt: 'yes' }, 'add_generation_prompt'],
  ])('answers 400 for %s, naming the field', (_name, fields, param) => {
    const r = readRequest('chat', { model: 'm', messages, ...fields }, {}, 16, llama31);
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.status).toBe(400);
    expect(r.error.body.error.param).toBe(param);
  });
});

describe('readRequest: the body text', () => {
  const toolsJson = '[{"function": {"name": "f", "parameters": {"type": "object", "properties": {"x": {"type": "number", "default": 1.0}, "3": {}}}}}]';
  const text = `{"model": "m", "messages": ${JSON.stringify(messages)}, "tools": ${toolsJson}}`;

  it('tools are keyed as vLLM renders them from the text (1.0, the order sent), given as text (EPP) or bytes (gateway)', () => {
    const marked = JSON.parse(text) as { tools: ChatTool[] };
    markRequestToolsJson(marked, text);
    const expected = llama31.chatPromptTokenIds(messages, marked);
    for (const raw of [text, Buffer.from(text, 'utf8')]) {
      const r = readRequest('chat', JSON.parse(text), {}, 16, llama31, raw);
      expect(r.ok && r.info.tokenIds).toEqual(expected);
    }
    // without the text: JavaScript's view of the tools (1, integer keys first), another prompt
    const r = readRequest('chat', JSON.parse(text), {}, 16, llama31);
    expect(r.ok && r.info.tokenIds).not.toEqual(expected);
    expect(r.ok && r.info.tokenIds).toEqual(llama31.chatPromptTokenIds(messages, JSON.parse(text) as { tools: ChatTool[] }));
  });
});
