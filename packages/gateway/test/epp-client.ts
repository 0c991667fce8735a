/**
 * An ext_proc client for tests and benchmarks: grpc-js over the same Envoy protos the picker
 * loads (`loadEppProtos`, the vendored `protos/envoy-api` first), driving one `Process` stream
 * per HTTP request the way Envoy does (request headers, the body in one or several
 * `request_body` messages with `end_of_stream` on the last, response headers with the served
 * endpoint in `metadata_context`, then the end). In full-duplex mode the first message carries
 * `protocol_config` ({@link fullDuplex}).
 */
import type * as grpc from '@grpc/grpc-js';
import type { PbBodySendMode, PbProtocolConfiguration, PbStruct, ProcessingRequest, ProcessingResponse } from '../src/index.js';

/** `envoy.type.v3.StatusCode` names (proto-loader `enums: String`) → HTTP status. */
const STATUS: Readonly<Record<string, number>> = { BadRequest: 400, NotFound: 404, PayloadTooLarge: 413, TooManyRequests: 429, ServiceUnavailable: 503, InternalServerError: 500 };

/** One ext_proc stream as Envoy drives it. */
export class ExtProcCall {
  readonly call: grpc.ClientDuplexStream<ProcessingRequest, ProcessingResponse>;
  private readonly got: ProcessingResponse[] = [];
  private readonly waiting: ((r: ProcessingResponse) => void)[] = [];
  /** Resolves with the gRPC status code when the server ends the stream. */
  readonly closed: Promise<number>;

  constructor(client: grpc.Client) {
    this.call = (client as unknown as { Process(): grpc.ClientDuplexStream<ProcessingRequest, ProcessingResponse> }).Process();
    this.call.on('data', (r: ProcessingResponse) => {
      const w = this.waiting.shift();
      if (w !== undefined) w(r);
      else this.got.push(r);
    });
    this.closed = new Promise((resolve) => {
      this.call.on('status', (s: grpc.StatusObject) => resolve(s.code));
      this.call.on('error', (e: grpc.ServiceError) => resolve(e.code));
    });
  }

  send(m: ProcessingRequest): void {
    this.call.write(m);
  }

  /** The next response (bounded wait: rejects after `timeoutMs`). */
  next(timeoutMs = 10_000): Promise<ProcessingResponse> {
    const r = this.got.shift();
    if (r !== undefined) return Promise.resolve(r);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no ext_proc response in time')), timeoutMs);
      this.waiting.push((x) => {
        clearTimeout(t);
        resolve(x);
      });
    });
  }

  /** Whether no response arrives within `ms` (for "still waiting" checks). */
  async quiet(ms: number): Promise<boolean> {
    if (this.got.length > 0) return false;
    await new Promise((r) => setTimeout(r, ms));
    return this.got.length === 0;
  }

  /** Half-closes (the HTTP stream is over) and waits for the server's status. */
  async end(): Promise<number> {
    this.call.end();
    return this.closed;
  }
}

/**
 * A `request_headers` message (pseudo-headers included), with the filter metadata given and,
 * as Envoy sends it on a stream's first message, the filter's `protocol_config`.
 */
export function headersMsg(h: Record<string, string>, endOfStream = false, metadata?: Record<string, PbStruct>, protocol?: PbProtocolConfiguration): ProcessingRequest {
  return {
    request_headers: { headers: { headers: Object.entries(h).map(([key, v]) => ({ key, raw_value: Buffer.from(v) })) }, end_of_stream: endOfStream },
    ...(metadata === undefined ? {} : { metadata_context: { filter_metadata: metadata } }),
    ...(protocol === undefined ? {} : { protocol_config: protocol }),
  };
}

/** The `protocol_config` of a filter with `request_body_mode: FULL_DUPLEX_STREAMED` (and the response body mode given). */
export function fullDuplex(responseBodyMode: PbBodySendMode = 'NONE'): PbProtocolConfiguration {
  return { request_body_mode: 'FULL_DUPLEX_STREAMED', response_body_mode: responseBodyMode };
}

/** The `streamed_response` of a body response (request or response body), or undefined when it has none. */
export function streamedOf(r: ProcessingResponse): { body: Buffer; endOfStream: boolean } | undefined {
  const m = (r.request_body ?? r.response_body)?.response?.body_mutation;
  if (m === undefined || !('streamed_response' in m) || m.streamed_response === undefined) return undefined;
  return { body: Buffer.from(m.streamed_response.body ?? []), endOfStream: m.streamed_response.end_of_stream === true };
}

/** `envoy.lb.subset_hint` filter metadata naming `addresses`. */
export function subsetHint(addresses: readonly string[]): Record<string, PbStruct> {
  return { 'envoy.lb.subset_hint': { fields: { 'x-gateway-destination-endpoint-subset': { listValue: { values: addresses.map((a) => ({ stringValue: a })) } } } } };
}

/** `envoy.lb` filter metadata with the served endpoint. */
export function servedMeta(address: string): Record<string, PbStruct> {
  return { 'envoy.lb': { fields: { 'x-gateway-destination-endpoint-served': { stringValue: address } } } };
}

/** What the picker answered: the header and the metadata value (they must agree). */
export function destinationOf(r: ProcessingResponse): { header: string | undefined; metadata: string | undefined; clearRouteCache: boolean | undefined; bodyMutated: boolean } {
  const common = r.request_body?.response ?? r.request_headers?.response;
  const h = common?.header_mutation?.set_headers?.find((o) => o.header.key === 'x-gateway-destination-endpoint')?.header;
  const header = h === undefined ? undefined : h.raw_value !== undefined && h.raw_value.length > 0 ? Buffer.from(h.raw_value).toString() : h.value;
  const metadata = r.dynamic_metadata?.fields?.['envoy.lb']?.structValue?.fields?.['x-gateway-destination-endpoint']?.stringValue;
  return { header, metadata, clearRouteCache: common?.clear_route_cache, bodyMutated: common?.body_mutation !== undefined };
}

/** The HTTP status of an immediate response, or undefined when the response is not one. */
export function immediateStatus(r: ProcessingResponse): number | undefined {
  const c = r.immediate_response?.status.code as unknown;
  return typeof c === 'number' ? c : typeof c === 'string' ? STATUS[c] : undefined;
}

/** The OpenAI error body of an immediate response. */
export function immediateError(r: ProcessingResponse): { message: string; code: string | null; type: string } {
  return (JSON.parse(Buffer.from(r.immediate_response?.body ?? []).toString()) as { error: { message: string; code: string | null; type: string } }).error;
}

/** Request headers of a POST as Envoy forwards them. */
export function postHeaders(id: string, path = '/v1/completions', extra: Record<string, string> = {}): Record<string, string> {
  return { ':method': 'POST', ':path': path, ':authority': 'gw', 'content-type': 'application/json', 'x-request-id': id, ...extra };
}

/**
 * Drives one request through the header and body phases: headers (expects CONTINUE back), then
 * the body in `chunks` messages with `end_of_stream` on the last only; returns the picker's
 * answer to the body and the picked address ('' when it answered with an immediate response).
 * The stream stays open (the caller sends the response headers and ends it).
 */
export async function pickOver(
  client: grpc.Client,
  headers: Record<string, string>,
  body: Buffer,
  opts: { metadata?: Record<string, PbStruct>; chunks?: number } = {},
): Promise<{ call: ExtProcCall; address: string; headersResponse: ProcessingResponse; response: ProcessingResponse }> {
  const c = new ExtProcCall(client);
  c.send(headersMsg(headers, false, opts.metadata));
  const headersResponse = await c.next();
  const n = opts.chunks ?? 1;
  const step = Math.ceil(body.length / n);
  for (let i = 0; i < n; i++) c.send({ request_body: { body: body.subarray(i * step, (i + 1) * step), end_of_stream: i === n - 1 } });
  const response = await c.next();
  return { call: c, address: destinationOf(response).header ?? '', headersResponse, response };
}
