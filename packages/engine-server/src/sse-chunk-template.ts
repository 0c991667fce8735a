/**
 * The streamed chunk of one token as a string template: everything but the token's text and the
 * finish reason is fixed for the whole request (id, object, created, model), so it is serialised
 * once per request and each token costs one `JSON.stringify` of its text and two string
 * concatenations instead of building three objects and serialising them. The output is byte for
 * byte what `formatSseChunk` writes for the same chunk object (`sse-chunk-template.test.ts`
 * checks it against random texts).
 *
 * Chunk shapes (vLLM's key order):
 * - completion: `{"id","object":"text_completion","created","model","choices":[{"index":0,"text","logprobs":null,"finish_reason","stop_reason":null}]}`
 * - chat: `{"id","object":"chat.completion.chunk","created","model","choices":[{"index":0,"delta":{"content"},"logprobs":null,"finish_reason"}]}`
 *
 * @see vllm-project/vllm:vllm/entrypoints/openai/protocol.py (CompletionStreamResponse, ChatCompletionStreamResponse)
 */

/** The fixed fields of a request's chunks. */
export interface SseChunkHeader {
  /** `cmpl-…` or `chatcmpl-…`. */
  readonly id: string;
  /** `text_completion` or `chat.completion.chunk`. */
  readonly object: string;
  /** Unix seconds. */
  readonly created: number;
  readonly model: string;
}

/** Serialises one request's token chunks; make one per request. */
export class SseChunkTemplate {
  private readonly head: string;
  private readonly mid: string;
  private readonly tail: string;

  /**
   * @param header - the request's fixed fields.
   * @param chat - chat chunk shape (`delta.content`) instead of completion (`text`).
   */
  constructor(header: SseChunkHeader, chat: boolean) {
    // JSON.stringify of the fixed object, minus its closing brace, keeps its escaping exact.
    const fixed = JSON.stringify({ id: header.id, object: header.object, created: header.created, model: header.model }).slice(0, -1);
    this.head = `data: ${fixed},"choices":[{"index":0,${chat ? '"delta":{"content":' : '"text":'}`;
    this.mid = `${chat ? '}' : ''},"logprobs":null,"finish_reason":`;
    this.tail = `${chat ? '' : ',"stop_reason":null'}}]}\n\n`;
  }

  /**
   * The SSE event of one token's chunk: `data: {json}\n\n`.
   * @param text - the token's text (any string; escaped as JSON).
   * @param finishReason - `null` for a token that is not the last, else `stop`, `length` or `abort`.
   */
  chunk(text: string, finishReason: string | null): string {
    return `${this.head}${JSON.stringify(text)}${this.mid}${finishReason === null ? 'null' : JSON.stringify(finishReason)}${this.tail}`;
  }
}
