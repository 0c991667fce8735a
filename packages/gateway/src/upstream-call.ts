/**
 * One request to an engine, made with undici's `Dispatcher.dispatch` and a handler of our own
 * instead of `undici.request`: per request that saves the `AbortController` and its signal
 * listener, the `Readable` response body and the promise per body read, which together cost
 * about a fifth of a bare node:http → undici proxy's CPU time (measured with the gateway's
 * overhead bench, short non-streaming completions at 1,000 req/s).
 *
 * A response that is not a `200 text/event-stream` is buffered whole and handed over once
 * (`whole()`: one promise per request); an SSE response is handed over chunk by chunk (`next()`)
 * with backpressure: the socket is paused while more than {@link UPSTREAM_HIGH_WATER_BYTES}
 * wait to be taken, as undici's own body stream would.
 *
 * @see nodejs/undici: docs/docs/api/Dispatcher.md (`dispatch`, `DispatchHandler`, `DispatchController`)
 */
import type { Dispatcher } from 'undici';

/** Bytes of SSE chunks held before the upstream socket is paused. @default 65536 (undici's body highWaterMark) */
export const UPSTREAM_HIGH_WATER_BYTES = 65536;

/** Origin and path prefix of an endpoint URL, parsed once per URL. */
const targets = new Map<string, { readonly origin: string; readonly prefix: string }>();

function target(url: string): { readonly origin: string; readonly prefix: string } {
  let t = targets.get(url);
  if (t === undefined) {
    const u = new URL(url);
    t = { origin: u.origin, prefix: u.pathname === '/' ? '' : u.pathname.replace(/\/+$/, '') };
    targets.set(url, t);
  }
  return t;
}

/** What {@link UpstreamCall.start} sends. */
export interface UpstreamCallOptions {
  /** The endpoint's base URL (`http://host:port`, optionally with a path prefix). */
  readonly url: string;
  /** Path under it, e.g. `/v1/completions`. */
  readonly path: string;
  /** Header names and values, flat: `[name, value, name, value, …]`. */
  readonly headers: readonly string[];
  /** The JSON request body. */
  readonly body: Buffer | string;
  /** Longest wait for the response headers, ms. */
  readonly headersTimeoutMs: number;
  /** Longest wait between body chunks, ms. */
  readonly bodyTimeoutMs: number;
}

type Waiter<T> = { resolve: (v: T) => void; reject: (e: Error) => void };

/**
 * One upstream request in flight: a `DispatchHandler` that buffers a plain response or queues the
 * chunks of an SSE one.
 *
 * Events resolve whichever promise is waiting: {@link whole} (buffered responses, resolved at the
 * end of the body), {@link next} (SSE chunks). An error (connection refused, reset, a timeout, or
 * {@link abort}) rejects the waiting promise; {@link headReceived} says whether it came before
 * the response headers (a request that can still be retried elsewhere) or after.
 */
export class UpstreamCall implements Dispatcher.DispatchHandler {
  /** HTTP status, once the headers came (0 before). */
  statusCode = 0;
  /** `content-type` of the response ('' when absent or before the headers). */
  contentType = '';
  /** True once the response headers came. */
  headReceived = false;
  /** True when the response is a 200 `text/event-stream` (read it with {@link next}). */
  streaming = false;
  /** True after {@link abort}. */
  aborted = false;
  /** Called once when the response headers come (the first byte of the answer), before any body. */
  onHead: (() => void) | undefined = undefined;
  private controller: Dispatcher.DispatchController | undefined;
  private abortReason: Error | undefined;
  private chunks: Buffer[] = [];
  private queued = 0;
  private ended = false;
  private error: Error | undefined;
  private headWaiter: Waiter<void> | undefined;
  private waiter: Waiter<Buffer | null> | undefined;

  private constructor() {}

  /**
   * Sends a POST to `url + path` through `dispatcher`.
   *
   * @param dispatcher - the gateway's pooled undici `Agent`.
   * @param o - see {@link UpstreamCallOptions}.
   * @returns the call; await {@link response} first.
   */
  static start(dispatcher: Dispatcher, o: UpstreamCallOptions): UpstreamCall {
    const c = new UpstreamCall();
    const t = target(o.url);
    dispatcher.dispatch(
      { origin: t.origin, path: t.prefix + o.path, method: 'POST', headers: o.headers as string[], body: o.body, headersTimeout: o.headersTimeoutMs, bodyTimeout: o.bodyTimeoutMs },
      c,
    );
    return c;
  }

  /**
   * Resolves when the response can be read: for a buffered response once its body is complete
   * ({@link whole} then returns it at once), for an SSE response once its headers came.
   * Rejects with the transport error (or the {@link abort} reason).
   */
  response(): Promise<void> {
    if (this.error !== undefined && !(this.streaming && this.headReceived)) return Promise.reject(this.error);
    if (this.streaming || this.ended) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.headWaiter = { resolve, reject };
    });
  }

  /** The whole body of a buffered response (after {@link response} resolved). */
  whole(): Buffer {
    const c = this.chunks;
    return c.length === 1 ? (c[0] as Buffer) : Buffer.concat(c);
  }

  /**
   * The next chunk of an SSE response; null at its end.
   *
   * @throws the transport error when the stream broke (after the chunks received before it).
   */
  next(): Promise<Buffer | null> {
    const c = this.chunks.shift();
    if (c !== undefined) {
      this.queued -= c.length;
      if (this.queued <= UPSTREAM_HIGH_WATER_BYTES && this.controller?.paused) this.controller.resume();
      return Promise.resolve(c);
    }
    if (this.error !== undefined) return Promise.reject(this.error);
    if (this.ended) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  /** Aborts the request (the client went away): the waiting promise rejects with `reason`. Idempotent. */
  abort(reason: Error): void {
    if (this.aborted || this.ended || this.error !== undefined) return;
    this.aborted = true;
    if (this.controller !== undefined) this.controller.abort(reason);
    else this.abortReason = reason;
  }

  // ---- undici DispatchHandler ----------------------------------------------------------------

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    // aborted while waiting for a connection: nothing is sent
    if (this.abortReason !== undefined) controller.abort(this.abortReason);
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    // 1xx informational responses come before the real one
    if (statusCode < 200) return;
    this.statusCode = statusCode;
    const ct = headers['content-type'];
    this.contentType = ct === undefined ? '' : String(ct);
    this.headReceived = true;
    this.streaming = statusCode === 200 && this.contentType.includes('text/event-stream');
    const h = this.onHead;
    if (h !== undefined) {
      this.onHead = undefined;
      h();
    }
    if (this.streaming) {
      const w = this.headWaiter;
      this.headWaiter = undefined;
      w?.resolve();
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.waiter !== undefined) {
      const w = this.waiter;
      this.waiter = undefined;
      w.resolve(chunk);
      return;
    }
    this.chunks.push(chunk);
    if (this.streaming) {
      this.queued += chunk.length;
      if (this.queued > UPSTREAM_HIGH_WATER_BYTES) controller.pause();
    }
  }

  onResponseEnd(): void {
    this.ended = true;
    const h = this.headWaiter;
    this.headWaiter = undefined;
    h?.resolve();
    const w = this.waiter;
    this.waiter = undefined;
    w?.resolve(null);
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.error = error;
    const h = this.headWaiter;
    this.headWaiter = undefined;
    h?.reject(error);
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(error);
  }
}
