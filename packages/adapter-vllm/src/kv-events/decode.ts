/**
 * Decoding of vLLM KV-event payloads (msgpack) into core's typed `KvEventBatch`.
 *
 * Accepts every encoding vLLM has shipped: the batch as an array `[ts, events, dp_rank?]` or a map
 * `{ts, events, data_parallel_rank}`; each event as a tagged array (legacy, trailing defaults
 * trimmed) or a map with a `"type"` key (current vLLM); hashes as u64/i64 integers or bytes (last
 * 8 bytes, big-endian). Unknown fields are ignored. Shapes are checked by hand (no schema parse
 * per event, this is the hot path); a bad batch throws before anything is returned, so a caller
 * never sees half a batch.
 *
 * @see vllm-project/vllm:vllm/distributed/kv_events.py
 */
import type { AllBlocksCleared, BlockRemoved, BlockStored, KvEvent, KvEventBatch } from '@kvmgr/core';
import { describeValue } from '@kvmgr/core';
import { Decoder } from '@msgpack/msgpack';
import { CompactBatchReader } from './compact-decode.js';
import { CompactKvEvents } from './compact-events.js';
import type { EngineKeyMap } from './engine-key-map.js';
import { decodeSeq, protocolError } from './wire.js';

const U64 = 64;

/** What {@link KvEventDecoder.applyBatch} reports of the batch it applied. */
export interface KvEventBatchInfo {
  /** Seconds since the epoch (float). */
  readonly ts: number;
  /** Events in the batch. */
  readonly events: number;
  /** Data-parallel rank, or null when the batch does not say. */
  readonly dataParallelRank: number | null;
}

/** One decoded PUB message: `[topic, seq, payload]`. */
export interface KvEventMessageFrames {
  /** Topic frame as UTF-8 (`""` by default; llm-d uses `kv@<pod>@<model>`). */
  readonly topic: string;
  /** Sequence number (from 0, +1 per batch, per publisher process). */
  readonly seq: number;
  readonly batch: KvEventBatch;
}

function fail(where: string, expected: string, value: unknown): never {
  throw protocolError(`${where}: expected ${expected}, got ${describeValue(value)}`);
}

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/**
 * Converts one wire hash to an unsigned 64-bit bigint: a non-negative integer as is, a negative
 * i64 as its two's complement, bytes as their last 8 bytes big-endian.
 */
function toU64(v: unknown, where: string): bigint {
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) fail(where, 'a u64/i64 integer or bytes', v);
    return v >= 0 ? BigInt(v) : BigInt.asUintN(U64, BigInt(v));
  }
  if (typeof v === 'bigint') return v >= 0n ? v : BigInt.asUintN(U64, v);
  if (v instanceof Uint8Array) {
    if (v.length === 0) fail(where, 'a u64/i64 integer or non-empty bytes', v);
    let h = 0n;
    for (let i = Math.max(0, v.length - 8); i < v.length; i++) h = (h << 8n) | BigInt(v[i] as number);
    return h;
  }
  return fail(where, 'a u64/i64 integer or bytes', v);
}

function hashList(v: unknown, where: string): bigint[] {
  if (!Array.isArray(v)) fail(where, 'an array of hashes', v);
  const out = new Array<bigint>(v.length);
  for (let i = 0; i < v.length; i++) {
    const h = v[i];
    // fast path: msgpack gives uint64 as bigint (useBigInt64) and small hashes as numbers
    out[i] = typeof h === 'bigint' && h >= 0n ? h : toU64(h, `${where}[${i}]`);
  }
  return out;
}

function optHash(v: unknown, where: string): bigint | null {
  return v == null ? null : toU64(v, where);
}

function tokenList(v: unknown, where: string): number[] {
  if (!Array.isArray(v)) fail(where, 'an array of token ids', v);
  for (let i = 0; i < v.length; i++) {
    const t = v[i];
    if (typeof t !== 'number' || t >>> 0 !== t) fail(`${where}[${i}]`, 'a token id (integer in [0, 2^32))', t);
  }
  // msgpack returned a fresh array of numbers: keep it, no copy
  return v as number[];
}

function optInt(v: unknown, where: string): number | null {
  if (v == null) return null;
  if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
  if (typeof v === 'bigint' && v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(v);
  return fail(where, 'an integer or null', v);
}

function optStr(v: unknown, where: string): string | null {
  if (v == null) return null;
  if (typeof v === 'string') return v;
  return fail(where, 'a string or null', v);
}

function optList(v: unknown, where: string): unknown[] | null {
  if (v == null) return null;
  if (Array.isArray(v)) return v;
  return fail(where, 'an array or null', v);
}

function blockSizeOf(v: unknown, where: string): number {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v > 0) return v;
  return fail(where, 'a positive integer', v);
}

// Every decoded event of a type has the same fields in the same order (absent = null), so the
// objects share one hidden class and consumers' property reads stay monomorphic.
function stored(
  w: string,
  hashes: unknown,
  parent: unknown,
  tokens: unknown,
  blockSize: unknown,
  loraId: unknown,
  medium: unknown,
  loraName: unknown,
  extraKeys: unknown,
  groupIdx: unknown,
  kind: unknown,
): BlockStored {
  return {
    type: 'BlockStored',
    blockHashes: hashList(hashes, `${w}.block_hashes`),
    parentBlockHash: optHash(parent, `${w}.parent_block_hash`),
    tokenIds: tokenList(tokens, `${w}.token_ids`),
    blockSize: blockSizeOf(blockSize, `${w}.block_size`),
    loraId: optInt(loraId, `${w}.lora_id`),
    medium: optStr(medium, `${w}.medium`),
    loraName: optStr(loraName, `${w}.lora_name`),
    extraKeys: optList(extraKeys, `${w}.extra_keys`),
    groupIdx: optInt(groupIdx, `${w}.group_idx`),
    kvCacheSpecKind: optStr(kind, `${w}.kv_cache_spec_kind`),
  };
}

function removed(w: string, hashes: unknown, medium: unknown, groupIdx: unknown, kind: unknown): BlockRemoved {
  return {
    type: 'BlockRemoved',
    blockHashes: hashList(hashes, `${w}.block_hashes`),
    medium: optStr(medium, `${w}.medium`),
    groupIdx: optInt(groupIdx, `${w}.group_idx`),
    kvCacheSpecKind: optStr(kind, `${w}.kv_cache_spec_kind`),
  };
}

function cleared(w: string, medium: unknown): AllBlocksCleared {
  return { type: 'AllBlocksCleared', medium: optStr(medium, `${w}.medium`) };
}

function decodeEvent(e: unknown, w: string): KvEvent {
  if (Array.isArray(e)) {
    const tag = e[0];
    if (tag === 'BlockStored') {
      if (e.length < 5) fail(w, 'a BlockStored array with at least [tag, hashes, parent, token_ids, block_size]', e);
      return stored(w, e[1], e[2], e[3], e[4], e[5], e[6], e[7], e[8], e[9], e[10]);
    }
    if (tag === 'BlockRemoved') {
      if (e.length < 2) fail(w, 'a BlockRemoved array [tag, hashes, medium?, group_idx?]', e);
      return removed(w, e[1], e[2], e[3], e[4]);
    }
    if (tag === 'AllBlocksCleared') return cleared(w, e[1]);
    return fail(`${w}[0]`, 'an event tag "BlockStored", "BlockRemoved" or "AllBlocksCleared"', tag);
  }
  if (isMap(e)) {
    const tag = e.type;
    if (tag === 'BlockStored') {
      return stored(w, e.block_hashes, e.parent_block_hash, e.token_ids, e.block_size, e.lora_id, e.medium, e.lora_name, e.extra_keys, e.group_idx, e.kv_cache_spec_kind);
    }
    if (tag === 'BlockRemoved') return removed(w, e.block_hashes, e.medium, e.group_idx, e.kv_cache_spec_kind);
    if (tag === 'AllBlocksCleared') return cleared(w, e.medium);
    return fail(`${w}.type`, '"BlockStored", "BlockRemoved" or "AllBlocksCleared"', tag);
  }
  return fail(w, 'an event (tagged array or map with "type")', e);
}

/**
 * Decodes KV-event payloads and PUB messages. Holds one reusable msgpack `Decoder`
 * (`useBigInt64`, so u64 hashes are exact); not safe to share between concurrent decodes of
 * different threads, which JavaScript does not have anyway.
 *
 * @example
 * ```ts
 * const dec = new KvEventDecoder();
 * const batch = dec.decodeBatch(payload); // { ts, events: [{ type: 'BlockStored', … }], dataParallelRank }
 * ```
 * @see vllm-project/vllm:vllm/distributed/kv_events.py
 */
export class KvEventDecoder {
  private readonly decoder = new Decoder({ useBigInt64: true });
  private readonly text = new TextDecoder('utf-8', { fatal: true });
  private readonly compact = new CompactKvEvents();
  private readonly reader = new CompactBatchReader((bytes) => {
    for (const v of this.decoder.decodeMulti(bytes)) return v;
    return undefined;
  });
  /**
   * Batches {@link applyBatch} could not take on its fast path and decoded the general way
   * (malformed payloads included). A count that grows with every batch means the publisher uses
   * an encoding the fast path leaves out: worth a look, not an error.
   */
  slowBatches = 0;

  /**
   * Decodes one msgpack payload into a batch.
   *
   * Decoded events carry every field of their type; fields the wire omitted are `null`.
   *
   * @param payload - the payload frame.
   * @returns `{ ts (s, float), events, dataParallelRank (null when absent) }`.
   * @throws KvmgrError `KVMGR_PROTOCOL` naming the bad part (`events[3].block_hashes[0]: …`) when
   *   the payload is not msgpack or not a KV-event batch. Nothing is returned on failure.
   */
  decodeBatch(payload: Uint8Array): KvEventBatch {
    let raw: unknown;
    try {
      raw = this.decoder.decode(payload);
    } catch (e) {
      throw protocolError(`payload is not valid msgpack (${(e as Error).message})`, e);
    }
    let ts: unknown;
    let events: unknown;
    let dp: unknown;
    if (Array.isArray(raw)) {
      if (raw.length < 2) fail('batch', 'an array [ts, events, data_parallel_rank?]', raw);
      ts = raw[0];
      events = raw[1];
      dp = raw[2];
    } else if (isMap(raw)) {
      ts = raw.ts;
      events = raw.events;
      dp = raw.data_parallel_rank;
    } else {
      return fail('batch', 'an array [ts, events, dp_rank?] or a map {ts, events, data_parallel_rank}', raw);
    }
    if (typeof ts !== 'number' || !Number.isFinite(ts)) fail('batch.ts', 'a finite number (seconds)', ts);
    if (!Array.isArray(events)) fail('batch.events', 'an array of events', events);
    const dataParallelRank = optInt(dp, 'batch.data_parallel_rank');
    if (dataParallelRank !== null && dataParallelRank < 0) fail('batch.data_parallel_rank', 'a non-negative integer or null', dp);
    const out = new Array<KvEvent>(events.length);
    for (let i = 0; i < events.length; i++) out[i] = decodeEvent(events[i], `events[${i}]`);
    return { ts, events: out, dataParallelRank };
  }

  /**
   * Decodes one payload and applies its events to `keys` — fused, for consumers that only need the
   * engine-key map: the payload is read byte by byte into reused typed arrays and applied without
   * building bigint hashes or event objects. The effect on `keys` is exactly that of
   * `keys.applyEvents(this.decodeBatch(payload).events)`, errors included: a payload off the fast
   * path (malformed, or a rare valid encoding) is decoded that way instead (see `slowBatches`).
   *
   * @param payload - the payload frame.
   * @param keys - the map to apply the batch to.
   * @returns the batch's `{ ts (s), events (count), dataParallelRank }`.
   * @throws KvmgrError `KVMGR_PROTOCOL` naming the bad part, as {@link decodeBatch}; `keys` is then
   *   unchanged (no event of the batch is applied).
   */
  applyBatch(payload: Uint8Array, keys: EngineKeyMap): KvEventBatchInfo {
    const c = this.compact;
    if (this.reader.read(payload, c)) {
      keys.applyCompact(c);
      return { ts: c.ts, events: c.count, dataParallelRank: c.dataParallelRank };
    }
    this.slowBatches++;
    const batch = this.decodeBatch(payload);
    keys.applyEvents(batch.events);
    return { ts: batch.ts, events: batch.events.length, dataParallelRank: batch.dataParallelRank ?? null };
  }

  /**
   * Decodes one PUB message `[topic, seq (u64 BE), payload]`.
   *
   * @param frames - the message's frames.
   * @throws KvmgrError `KVMGR_PROTOCOL` on a wrong frame count, a topic that is not UTF-8, a seq
   *   frame that is not 8 bytes, the replay end marker, or a bad payload.
   */
  decodeMessage(frames: readonly Uint8Array[]): KvEventMessageFrames {
    if (frames.length !== 3) throw protocolError(`expected 3 frames [topic, seq, payload], got ${frames.length}`);
    let topic: string;
    try {
      topic = this.text.decode(frames[0]);
    } catch (e) {
      throw protocolError('frame 0 (topic) is not UTF-8', e);
    }
    const seq = decodeSeq(frames[1] as Uint8Array, 'frame 1 (seq)');
    if (seq < 0) throw protocolError('frame 1 (seq) is the replay end marker on the live stream');
    return { topic, seq, batch: this.decodeBatch(frames[2] as Uint8Array) };
  }
}
