/**
 * Issue #19 fuzz suite for the adapter's network boundaries: KV-event payloads (msgpack bytes
 * from a ZMQ socket), OpenAI request bodies (JSON from an HTTP client) and Prometheus text
 * (an engine's `/metrics`). Each mutated input either decodes to a well-formed value or is
 * refused with a `KvmgrError` (`KVMGR_PROTOCOL`) / an OpenAI 400 body; nothing else escapes,
 * and each case finishes within a time bound. Seeded; `KVMGR_FUZZ_RUNS` raises the case count.
 */
import { readFileSync } from 'node:fs';
import { type KvEvent, type KvEventBatch, isKvmgrError, parseExposition } from '@kvmgr/core';
import { encode } from '@msgpack/msgpack';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { KvEventDecoder } from './kv-events/decode.js';
import { KvEventEncoder } from './kv-events/encode.js';
import { parseOpenAiRequest } from './openai-api-errors.js';
import { ChatCompletionRequestSchema, CompletionRequestSchema } from './openai-api.js';

const RUNS = Number(process.env.KVMGR_FUZZ_RUNS ?? 2000);
const SEED = 19;
/** Per-case bound on CPU time, ms: a parser that backtracks or loops on some input fails here. */
const CASE_MS = 1000;
const U64_MAX = (1n << 64n) - 1n;

/** CPU time of this process, ms: a case's own work, which a loaded machine's scheduling does not stretch (wall time would). */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

function timed<T>(f: () => T): T {
  const t0 = cpuMs();
  const r = f();
  expect(cpuMs() - t0).toBeLessThan(CASE_MS);
  return r;
}

/** A decoded batch is well-formed: what a consumer may rely on without checking again. */
function expectWellFormed(batch: KvEventBatch): void {
  expect(Number.isFinite(batch.ts)).toBe(true);
  for (const e of batch.events as readonly KvEvent[]) {
    if (e.type === 'AllBlocksCleared') continue;
    expect(e.type === 'BlockStored' || e.type === 'BlockRemoved').toBe(true);
    for (const h of e.blockHashes) expect(typeof h === 'bigint' && h >= 0n && h <= U64_MAX).toBe(true);
    if (e.type === 'BlockStored') {
      expect(e.parentBlockHash === null || (typeof e.parentBlockHash === 'bigint' && e.parentBlockHash >= 0n && e.parentBlockHash <= U64_MAX)).toBe(true);
      for (const t of e.tokenIds) expect(Number.isInteger(t)).toBe(true);
      expect(Number.isInteger(e.blockSize) && e.blockSize > 0).toBe(true);
    }
  }
}

const hash = fc.bigInt({ min: 0n, max: U64_MAX });
const storedEvent = fc.record({
  type: fc.constant('BlockStored' as const),
  blockHashes: fc.array(hash, { minLength: 1, maxLength: 3 }),
  parentBlockHash: fc.option(hash, { nil: null }),
  tokenIds: fc.array(fc.nat(200_000), { minLength: 4, maxLength: 12 }),
  blockSize: fc.constantFrom(4, 16),
  loraId: fc.option(fc.nat(8), { nil: null }),
  medium: fc.constantFrom('GPU', 'CPU', null),
  loraName: fc.option(fc.string({ maxLength: 6 }), { nil: null }),
});
const removedEvent = fc.record({ type: fc.constant('BlockRemoved' as const), blockHashes: fc.array(hash, { minLength: 1, maxLength: 3 }), medium: fc.constantFrom('GPU', 'CPU', null) });
const batchArb = fc.record({
  ts: fc.double({ min: 0, max: 2e9, noNaN: true }),
  events: fc.array(fc.oneof(storedEvent, removedEvent, fc.constant({ type: 'AllBlocksCleared' as const })), { maxLength: 6 }),
  dataParallelRank: fc.option(fc.nat(7), { nil: null }),
});

/** Byte-level mutations: flip, truncate, insert, overwrite. */
const byteEdits = fc.array(fc.tuple(fc.constantFrom('flip', 'cut', 'insert', 'set'), fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 });
function mutateBytes(bytes: Uint8Array, edits: readonly (readonly [string, number, number])[]): Uint8Array {
  let b = Array.from(bytes);
  for (const [op, at, v] of edits) {
    const i = b.length === 0 ? 0 : at % b.length;
    if (op === 'flip') b[i] = (b[i] ?? 0) ^ (1 << (v % 8));
    else if (op === 'cut') b = b.slice(0, i);
    else if (op === 'insert') b.splice(i, 0, v);
    else b[i] = v;
  }
  return Uint8Array.from(b);
}

describe('KV-event payload fuzz (#19)', () => {
  const decoder = new KvEventDecoder();

  it(`${RUNS} byte-mutated vLLM batches (map and legacy array encodings) decode well-formed or throw KVMGR_PROTOCOL`, () => {
    const encoders = [new KvEventEncoder(), new KvEventEncoder({ encoding: 'array', batchEncoding: 'array' })];
    fc.assert(
      fc.property(batchArb, fc.nat(1), byteEdits, (batch, which, edits) => {
        const bytes = mutateBytes((encoders[which] as KvEventEncoder).encodeBatch(batch), edits);
        try {
          expectWellFormed(timed(() => decoder.decodeBatch(bytes)));
        } catch (e) {
          if (!isKvmgrError(e, 'KVMGR_PROTOCOL')) throw e;
        }
      }),
      { numRuns: RUNS, seed: SEED },
    );
  });

  it(`${RUNS} structurally wrong batches (any msgpack value in any position) decode well-formed or throw KVMGR_PROTOCOL`, () => {
    const anyValue = fc.oneof(
      fc.anything({ maxDepth: 2, withBigInt: false, withMap: false, withSet: false, withDate: false, withTypedArray: false, withSparseArray: false, withNullPrototype: false }),
      fc.bigInt({ min: -(1n << 63n), max: U64_MAX }),
      fc.uint8Array({ maxLength: 40 }),
    );
    const event = fc.oneof(
      fc.tuple(fc.constantFrom('BlockStored', 'BlockRemoved', 'AllBlocksCleared', 'Nope'), fc.array(anyValue, { maxLength: 11 })).map(([t, rest]) => [t, ...rest]),
      fc.dictionary(fc.constantFrom('type', 'block_hashes', 'parent_block_hash', 'token_ids', 'block_size', 'medium', 'lora_id', 'group_idx', 'extra'), anyValue).map((m) => ({ type: 'BlockStored', ...m })),
      anyValue,
    );
    const batch = fc.oneof(
      fc.tuple(anyValue, fc.array(event, { maxLength: 4 }), anyValue).map(([ts, ev, dp]) => [ts, ev, dp]),
      fc.tuple(fc.double({ noNaN: true }), fc.array(event, { maxLength: 4 })).map(([ts, ev]) => ({ ts, events: ev })),
      anyValue,
    );
    fc.assert(
      fc.property(batch, (value) => {
        let bytes: Uint8Array;
        try {
          bytes = encode(value, { useBigInt64: true });
        } catch {
          return; // not encodable as msgpack (e.g. a bigint out of 64-bit range): nothing to send
        }
        try {
          expectWellFormed(timed(() => decoder.decodeBatch(bytes)));
        } catch (e) {
          if (!isKvmgrError(e, 'KVMGR_PROTOCOL')) throw e;
        }
      }),
      { numRuns: RUNS, seed: SEED },
    );
  });
});

describe('OpenAI request body fuzz (#19)', () => {
  const valid: Record<string, unknown>[] = [
    { model: 'm', prompt: 'hello', max_tokens: 8, stream: true, stream_options: { include_usage: true } },
    { model: 'm', prompt: [1, 2, 3], temperature: 0 },
    { model: 'm', prompt: [[1, 2], [3]], kv_transfer_params: { do_remote_decode: true } },
    { model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 },
    { model: 'm', messages: [{ role: 'system', content: [{ type: 'text', text: 'be brief' }] }] },
  ];
  const keys = ['model', 'prompt', 'messages', 'max_tokens', 'temperature', 'stream', 'stream_options', 'n', 'kv_transfer_params', 'top_p', 'role', 'content'];
  const anyJson = fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.constantFrom(-1, 1.5, Number.POSITIVE_INFINITY, '', [], {}, [[]], [-1], [1.5], null));
  const mutated = fc.tuple(fc.constantFrom(...valid), fc.array(fc.tuple(fc.constantFrom(...keys), fc.option(anyJson, { nil: undefined })), { maxLength: 3 })).map(([base, edits]) => {
    const body: Record<string, unknown> = structuredClone(base);
    for (const [k, v] of edits) {
      if (v === undefined) delete body[k];
      else body[k] = v;
    }
    return body;
  });

  it(`${RUNS} mutated completion and chat bodies give a value or a 400 with one line naming the field`, () => {
    fc.assert(
      fc.property(fc.oneof(mutated, anyJson), (body) => {
        for (const schema of [CompletionRequestSchema, ChatCompletionRequestSchema]) {
          const r = timed(() => parseOpenAiRequest(schema, body));
          if (!r.ok) {
            expect(r.error.status).toBe(400);
            expect(r.error.body.error.message.length).toBeGreaterThan(0);
            expect(r.error.body.error.message).not.toContain('\n');
          }
        }
      }),
      { numRuns: RUNS, seed: SEED },
    );
  });
});

describe('Prometheus text fuzz (#19)', () => {
  const text = readFileSync(new URL('./fixtures/vllm-v1-dp2.prom', import.meta.url), 'utf8');
  const pieces = ['{', '}', '"', '=', ',', ' ', '\n', '#', '# TYPE x histogram\n', 'NaN', '+Inf', '1e999', '\\', '_bucket', 'le="', 'vllm:'];
  const mutatedText = fc.array(fc.tuple(fc.nat(), fc.nat(6), fc.oneof(fc.constantFrom(...pieces), fc.string({ maxLength: 5 }))), { minLength: 1, maxLength: 5 }).map((edits) => {
    let t = text;
    for (const [at, del, ins] of edits) {
      const i = at % (t.length + 1);
      t = t.slice(0, i) + ins + t.slice(i + del);
    }
    return t;
  });

  it(`${RUNS} mutated vLLM expositions parse or throw KVMGR_PROTOCOL`, () => {
    fc.assert(
      fc.property(fc.oneof(mutatedText, fc.string({ maxLength: 200 })), (t) => {
        try {
          const exp = timed(() => parseExposition(t));
          for (const s of exp.samples) expect(typeof s.value).toBe('number');
        } catch (e) {
          if (!isKvmgrError(e, 'KVMGR_PROTOCOL')) throw e;
        }
      }),
      { numRuns: RUNS, seed: SEED },
    );
  });
});
