/**
 * Small pieces of the upstream leg: which failures are the endpoint's fault, the SSE usage
 * scanner, and waiting for a writable's `drain`.
 */
import type { Writable } from 'node:stream';
import { UsageSchema } from '@kvmgr/adapter-vllm';

/** Usage as the gateway logs it. */
export interface UsageSeen {
  readonly promptTokens: number;
  readonly completionTokens: number;
  readonly cachedTokens: number | null;
}

/** Reads `usage` from a response body (JSON object), or undefined. */
export function usageOf(body: unknown): UsageSeen | undefined {
  if (body === null || typeof body !== 'object') return undefined;
  const u = UsageSchema.safeParse((body as Record<string, unknown>)['usage']);
  if (!u.success || u.data == null) return undefined;
  return {
    promptTokens: u.data.prompt_tokens,
    completionTokens: u.data.completion_tokens ?? 0,
    cachedTokens: u.data.prompt_tokens_details?.cached_tokens ?? null,
  };
}

/**
 * Watches an SSE byte stream as it passes and keeps the last `usage` seen. Only events that
 * mention `"usage"` with an object value are parsed; the partial-event buffer is bounded.
 */
export class SseUsageScanner {
  usage: UsageSeen | undefined;
  private tail = '';
  private readonly decoder = new TextDecoder();

  /** Feeds one chunk of the stream. */
  push(chunk: Uint8Array): void {
    const text = this.tail + this.decoder.decode(chunk, { stream: true });
    const events = text.split('\n\n');
    this.tail = (events.pop() ?? '').slice(-65536);
    for (const ev of events) {
      if (!ev.includes('"usage":{')) continue;
      const data = ev.startsWith('data: ') ? ev.slice(6) : ev.replace(/^data:/, '');
      try {
        const u = usageOf(JSON.parse(data));
        if (u !== undefined) this.usage = u;
      } catch {
        // not JSON: the client sees it as it is; nothing to count
      }
    }
  }
}

/** Resolves on `drain` or `close` of a writable (whichever first). */
export function drained(w: Writable): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      w.off('drain', done);
      w.off('close', done);
      resolve();
    };
    w.on('drain', done);
    w.on('close', done);
  });
}

/** The system or undici error code of an upstream error (its own, else its cause's), if any. */
export function errorCode(e: unknown): string | undefined {
  return (e as { code?: string } | null)?.code ?? (e as { cause?: { code?: string } } | null)?.cause?.code;
}

/** True when an upstream error says the endpoint itself is broken (not the client, not a 4xx). */
export function isEndpointFailure(e: unknown): boolean {
  const code = errorCode(e);
  return (
    code === 'ECONNREFUSED' ||
    code === 'ECONNRESET' ||
    code === 'EPIPE' ||
    code === 'EHOSTUNREACH' ||
    code === 'ENOTFOUND' ||
    code === 'UND_ERR_SOCKET' ||
    code === 'UND_ERR_CONNECT_TIMEOUT' ||
    code === 'UND_ERR_HEADERS_TIMEOUT' ||
    code === 'UND_ERR_BODY_TIMEOUT' ||
    code === 'UND_ERR_CLOSED'
  );
}
