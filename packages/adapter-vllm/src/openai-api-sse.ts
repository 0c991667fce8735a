/**
 * Server-sent events as vLLM streams OpenAI responses: each chunk is one event
 * `data: {json}\n\n`, and the stream ends with `data: [DONE]\n\n`. With
 * `stream_options.include_usage` the last chunk before `[DONE]` carries `usage` and empty
 * `choices`.
 *
 * @see vllm-project/vllm:vllm/entrypoints/openai/serving_completion.py (completion_stream_generator)
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
 */
import { KvmgrError } from '@kvmgr/core';
import type { z } from 'zod';
import { formatIssuePath } from './openai-api-errors.js';

/** The stream terminator, `data: [DONE]\n\n`. */
export const SSE_DONE = 'data: [DONE]\n\n';

/** Formats one chunk as an SSE event: `data: {json}\n\n` (JSON has no raw newlines, so one `data:` line). */
export function formatSseChunk(chunk: unknown): string {
  return `data: ${JSON.stringify(chunk)}\n\n`;
}

/** Options of {@link parseSseStream}. */
export interface ParseSseOptions<S extends z.ZodType> {
  /** Validate every chunk with this schema (e.g. `ChatCompletionChunkSchema`). @default none */
  readonly schema?: S;
  /** Accept a stream that ends without `data: [DONE]`. @default false */
  readonly allowMissingDone?: boolean;
}

async function* lines(stream: AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buf = '';
  for await (const part of stream) {
    buf += typeof part === 'string' ? part : decoder.decode(part, { stream: true });
    let nl: number;
    while ((nl = buf.search(/\r\n|\r|\n/)) !== -1) {
      const line = buf.slice(0, nl);
      buf = buf.slice(buf[nl] === '\r' && buf[nl + 1] === '\n' ? nl + 2 : nl + 1);
      yield line;
    }
  }
  buf += decoder.decode();
  if (buf !== '') yield buf;
  yield ''; // dispatch a final event without its blank line
}

/**
 * Parses an SSE byte stream (a fetch `Response.body`, a Node `IncomingMessage`) into chunks. Events
 * are separated by blank lines; the `data:` lines of one event are joined with `\n`; comments
 * (`:`) and other fields (`event:`, `id:`) are ignored. Stops at `data: [DONE]` without reading
 * further.
 *
 * @returns the parsed JSON of each event, validated by `options.schema` when given.
 * @throws KvmgrError `KVMGR_PROTOCOL` when an event is not JSON, fails the schema (the message
 *   names the field), or the stream ends before `[DONE]` (unless `allowMissingDone`).
 */
export async function* parseSseStream<S extends z.ZodType = z.ZodType<unknown>>(
  stream: AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string>,
  options: ParseSseOptions<S> = {},
): AsyncGenerator<z.infer<S>, void, undefined> {
  let data: string[] = [];
  let event = 0;
  for await (const line of lines(stream)) {
    if (line === '') {
      if (data.length === 0) continue;
      const payload = data.join('\n');
      data = [];
      event++;
      if (payload.trim() === '[DONE]') return;
      let json: unknown;
      try {
        json = JSON.parse(payload);
      } catch (e) {
        throw new KvmgrError('KVMGR_PROTOCOL', `SSE event ${event}: expected JSON or [DONE], got ${JSON.stringify(payload.slice(0, 60))}`, { cause: e });
      }
      if (options.schema === undefined) {
        yield json as z.infer<S>;
        continue;
      }
      const r = options.schema.safeParse(json);
      if (!r.success) {
        const issue = r.error.issues[0];
        throw new KvmgrError('KVMGR_PROTOCOL', `SSE event ${event}: ${issue ? `${formatIssuePath(issue.path)}: ${issue.message}` : 'invalid chunk'}`, { cause: r.error });
      }
      yield r.data as z.infer<S>;
      continue;
    }
    if (line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    if (field !== 'data') continue;
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    data.push(value);
  }
  if (!options.allowMissingDone) throw new KvmgrError('KVMGR_PROTOCOL', `SSE stream ended after ${event} events without data: [DONE]`);
}
