/**
 * OpenAI-style error bodies, `{"error": {"message", "type", "param", "code"}}`, and the mapping of
 * a zod validation error to one line that names the field and what was expected (HTTP 400).
 *
 * @see https://platform.openai.com/docs/guides/error-codes
 * @see vllm-project/vllm:vllm/entrypoints/openai/protocol.py (ErrorResponse, ErrorInfo)
 */
import type { z } from 'zod';

/** The `error` object of an OpenAI error response. */
export interface OpenAiErrorInfo {
  /** One line: what was wrong and what was expected. */
  readonly message: string;
  /** `invalid_request_error`, `authentication_error`, `permission_error`, `not_found_error`, `rate_limit_error`, `server_error`. */
  readonly type: string;
  /** The offending request field as a path (`messages[0].content`), or null. */
  readonly param: string | null;
  /** A machine-readable code, or null. */
  readonly code: string | null;
}

/** An OpenAI error response body. */
export interface OpenAiErrorBody {
  readonly error: OpenAiErrorInfo;
}

/** An error body with the HTTP status to send it with. */
export interface OpenAiErrorResponse {
  readonly status: number;
  readonly body: OpenAiErrorBody;
}

/** The OpenAI error `type` for an HTTP status. */
export function openAiErrorType(status: number): string {
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status === 404) return 'not_found_error';
  if (status === 429) return 'rate_limit_error';
  if (status >= 500) return 'server_error';
  return 'invalid_request_error';
}

/**
 * Builds an error response.
 *
 * @param status - HTTP status, e.g. 400, 404, 429, 503.
 * @param message - one line.
 * @param options - `type` (default from the status, see {@link openAiErrorType}), `param` and `code` (default null).
 */
export function openAiError(status: number, message: string, options: { type?: string; param?: string | null; code?: string | null } = {}): OpenAiErrorResponse {
  return { status, body: { error: { message, type: options.type ?? openAiErrorType(status), param: options.param ?? null, code: options.code ?? null } } };
}

/** `messages[0].content` from `['messages', 0, 'content']`. */
export function formatIssuePath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out === '' ? String(p) : `.${String(p)}`;
  }
  return out === '' ? '(body)' : out;
}

function describeInput(input: unknown): string {
  if (input === undefined) return 'nothing';
  if (input === null) return 'null';
  if (Array.isArray(input)) return 'an array';
  if (typeof input === 'string') return input.length > 40 ? `a string "${input.slice(0, 37)}..."` : `"${input}"`;
  if (typeof input === 'object') return 'an object';
  return String(input);
}

type Issue = z.core.$ZodIssue;

/** The value at `path` inside `root`, or undefined. */
function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v = root;
  for (const p of path) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<PropertyKey, unknown>)[p];
  }
  return v;
}

/**
 * The issue to report and its full path: for a union whose input matched one branch's shape
 * (an array of the right kind with one bad element), the deepest issue of that branch.
 */
function deepest(issue: Issue, prefix: readonly PropertyKey[] = []): { issue: Issue; path: PropertyKey[] } {
  const path = [...prefix, ...issue.path];
  if (issue.code === 'invalid_union' && issue.errors.length > 0) {
    let best: Issue | undefined;
    for (const branch of issue.errors) {
      const first = branch[0];
      if (first !== undefined && first.path.length > (best?.path.length ?? 0)) best = first;
    }
    if (best !== undefined) return deepest(best, path);
  }
  return { issue, path };
}

/** One issue as "expected X, got Y". */
function explain(issue: Issue, input: unknown): string {
  if (input === undefined) {
    const expected = issue.code === 'invalid_type' ? issue.expected : issue.message.replace(/^expected /, '');
    return `is required (expected ${expected})`;
  }
  const got = typeof input === 'object' && input !== null ? '' : `, got ${describeInput(input)}`;
  // Schema-written messages already say what was expected.
  if (issue.message.startsWith('expected ')) return `${issue.message}${got}`;
  switch (issue.code) {
    case 'invalid_type':
      return `expected ${issue.expected}${got || `, got ${describeInput(input)}`}`;
    case 'too_small':
      if (issue.origin === 'array') return `expected at least ${issue.minimum} item${issue.minimum === 1 ? '' : 's'}`;
      if (issue.origin === 'string') return `expected at least ${issue.minimum} characters`;
      return `expected a number ${issue.inclusive ? '>=' : '>'} ${issue.minimum}${got}`;
    case 'too_big':
      if (issue.origin === 'array') return `expected at most ${issue.maximum} items`;
      return `expected a number ${issue.inclusive ? '<=' : '<'} ${issue.maximum}${got}`;
    case 'invalid_value':
      return `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}${got}`;
    case 'custom':
      // a refinement writes its whole sentence (e.g. vLLM's own message)
      return issue.message;
    case 'unrecognized_keys':
      return `unknown field${issue.keys.length === 1 ? '' : 's'} ${issue.keys.join(', ')}`;
    default:
      return `${issue.message}${got}`;
  }
}

/**
 * Maps a zod error from a request schema to a 400 `invalid_request_error` whose message is one
 * line naming the first bad field and what was expected, e.g.
 * `messages[0].role: expected one of "system", ..., got "robot"`; `param` is the field's path.
 *
 * @param error - from `schema.safeParse(body)`.
 * @param body - the body that was parsed, to say what was found at the field (`got …`) and
 *   whether it was missing.
 */
export function zodErrorToOpenAi(error: z.ZodError, body?: unknown): OpenAiErrorResponse {
  const first = error.issues[0];
  if (first === undefined) return openAiError(400, 'invalid request body');
  const { issue, path } = deepest(first);
  const param = formatIssuePath(path);
  const input = body === undefined ? ('input' in issue ? issue.input : null) : valueAt(body, path);
  return openAiError(400, `${param}: ${explain(issue, input)}`, { param: path.length === 0 ? null : param, code: 'invalid_value' });
}

/** Result of {@link parseOpenAiRequest}. */
export type OpenAiParseResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: OpenAiErrorResponse };

/**
 * Validates a request body (already JSON-decoded) against a schema.
 *
 * @returns `{ ok: true, value }` with unknown fields kept, or `{ ok: false, error }` with the
 *   status (400) and the OpenAI error body to send.
 */
export function parseOpenAiRequest<S extends z.ZodType>(schema: S, body: unknown): OpenAiParseResult<z.infer<S>> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return { ok: false, error: openAiError(400, `request body: expected a JSON object, got ${describeInput(body)}`, { code: 'invalid_value' }) };
  }
  const r = schema.safeParse(body);
  return r.success ? { ok: true, value: r.data } : { ok: false, error: zodErrorToOpenAi(r.error, body) };
}
