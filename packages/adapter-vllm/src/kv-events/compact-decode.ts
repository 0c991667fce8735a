/**
 * The fast path of KV-event decoding: reads a vLLM msgpack payload byte by byte straight into a
 * {@link CompactKvEvents} (hashes as u32 halves, tokens in one `Uint32Array`), without building
 * the generic msgpack object tree, the bigint hashes or the typed event objects.
 *
 * It accepts a subset of what `KvEventDecoder.decodeBatch` accepts and, on that subset, yields
 * exactly the same events. Everything else — a malformed payload, and also rare but valid
 * encodings (hashes as floats, ints as 64-bit formats where 32 bits would do, msgpack ext types,
 * duplicate map keys, nesting deeper than {@link MAX_DEPTH}) — makes it give up (return false)
 * before anything is applied, and the caller decodes the payload the general way, which throws
 * the precise `KVMGR_PROTOCOL` error or yields the events. So the error messages and the
 * edge-case semantics live in one place (`decode.ts`), and this file only has to be right about
 * what it accepts.
 *
 * @see vllm-project/vllm:vllm/distributed/kv_events.py
 * @see https://github.com/msgpack/msgpack/blob/master/spec.md
 */
import { blockKeyExtraDigest } from '@kvmgr/core';
import { type CompactKvEvents, EVENT_CLEARED, EVENT_REMOVED, EVENT_STORED } from './compact-events.js';
import { mediumBit } from './engine-key-map.js';

/** Thrown inside the reader to give up (preallocated: throwing it is cheap); never escapes {@link CompactBatchReader.read}. */
const GIVE_UP = new Error('kv-events: payload is not on the compact fast path');
const EMPTY: Uint8Array = new Uint8Array(0);

/** Deepest nesting of an ignored value the reader walks (deeper: give up). */
export const MAX_DEPTH = 64;

// Fields of an event, the map key that names each, and where each sits in a legacy tagged array.
const F_TYPE = 0;
const F_HASHES = 1;
const F_PARENT = 2;
const F_TOKENS = 3;
const F_BLOCK_SIZE = 4;
const F_LORA_ID = 5;
const F_MEDIUM = 6;
const F_LORA_NAME = 7;
const F_EXTRA = 8;
const F_GROUP = 9;
const F_KIND = 10;
const F_IGNORED = -1;

const ascii = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));
const KEY_BYTES: readonly Uint8Array[] = [
  'type',
  'block_hashes',
  'parent_block_hash',
  'token_ids',
  'block_size',
  'lora_id',
  'medium',
  'lora_name',
  'extra_keys',
  'group_idx',
  'kv_cache_spec_kind',
].map(ascii);
const PROTO = ascii('__proto__');
const K_TS = ascii('ts');
const K_EVENTS = ascii('events');
const K_DP = ascii('data_parallel_rank');
const TAG_STORED = ascii('BlockStored');
const TAG_REMOVED = ascii('BlockRemoved');
const TAG_CLEARED = ascii('AllBlocksCleared');
const GPU = ascii('GPU');
const CPU = ascii('CPU');
/** Legacy arrays: element index → field (index 0 is the tag). */
const STORED_AT = [F_TYPE, F_HASHES, F_PARENT, F_TOKENS, F_BLOCK_SIZE, F_LORA_ID, F_MEDIUM, F_LORA_NAME, F_EXTRA, F_GROUP, F_KIND];
const REMOVED_AT = [F_TYPE, F_HASHES, F_MEDIUM, F_GROUP, F_KIND];
const CLEARED_AT = [F_TYPE, F_MEDIUM];

/**
 * Reads payloads into a {@link CompactKvEvents}. One instance per decoder; not reentrant.
 *
 * @param decodeValue - the general msgpack decoder, used for the rare values whose JavaScript
 *   form matters (non-null extra keys, LoRA names, media other than GPU/CPU), so they come out
 *   exactly as the general path decodes them. It gets the payload from the value's first byte to
 *   the payload's end and must return the first value only: `@msgpack/msgpack` decodes a string
 *   that ends inside a UTF-8 sequence with the bytes after the string, so a value cut at its own
 *   end could decode differently from the same value inside the whole payload.
 */
export class CompactBatchReader {
  private b = EMPTY;
  private end = 0;
  private out: CompactKvEvents | undefined;
  // results of the field readers (no allocation per value)
  private hashHi = 0;
  private hashLo = 0;
  private int = 0;
  // the event being read
  private seen = 0;
  private kind = -1;
  private hashStart = 0;
  private hashCount = -1;
  private tokenStart = 0;
  private tokenCount = -1;
  private blockSize = 0;
  private hasParent = 0;
  private parentHi = 0;
  private parentLo = 0;
  private loraId: number | null = null;
  private loraNameAt = -1;
  private mediumAt = -1;
  private extraAt = -1;
  private extraCount = 0;

  constructor(private readonly decodeValue: (bytes: Uint8Array) => unknown) {}

  /**
   * Decodes `payload` into `out` (reset first).
   *
   * @returns true when `out` now holds the batch; false when the payload is off the fast path
   *   (malformed, or valid in a form this reader leaves to the general decoder) — `out` is then
   *   garbage and nothing else was touched.
   */
  read(payload: Uint8Array, out: CompactKvEvents): boolean {
    this.b = payload;
    this.end = payload.length;
    this.out = out;
    out.reset();
    try {
      return this.batch() === this.end;
    } catch {
      // GIVE_UP, or anything unexpected: either way the general decoder has the last word
      return false;
    } finally {
      this.b = EMPTY; // do not keep the payload alive
      this.out = undefined;
    }
  }

  // ---- msgpack primitives -------------------------------------------------------------------

  private need(p: number, n: number): void {
    if (p + n > this.end) throw GIVE_UP;
  }

  private be(p: number, width: number): number {
    this.need(p, width);
    const b = this.b;
    if (width === 1) return b[p] as number;
    if (width === 2) return ((b[p] as number) << 8) | (b[p + 1] as number);
    return (((b[p] as number) << 24) | ((b[p + 1] as number) << 16) | ((b[p + 2] as number) << 8) | (b[p + 3] as number)) >>> 0;
  }

  /** Array header at `p`: sets `int` = length, returns the position of the first element. */
  private arrayHeader(p: number): number {
    this.need(p, 1);
    const c = this.b[p] as number;
    let n: number;
    if ((c & 0xf0) === 0x90) {
      n = c & 0x0f;
      p += 1;
    } else if (c === 0xdc) {
      n = this.be(p + 1, 2);
      p += 3;
    } else if (c === 0xdd) {
      n = this.be(p + 1, 4);
      p += 5;
    } else {
      throw GIVE_UP;
    }
    if (n > this.end - p) throw GIVE_UP; // every element takes at least a byte
    this.int = n;
    return p;
  }

  /** Map header at `p`, or −1 when there is no map there; sets `int` = entry count. */
  private mapHeader(p: number): number {
    this.need(p, 1);
    const c = this.b[p] as number;
    let n: number;
    if ((c & 0xf0) === 0x80) {
      n = c & 0x0f;
      p += 1;
    } else if (c === 0xde) {
      n = this.be(p + 1, 2);
      p += 3;
    } else if (c === 0xdf) {
      n = this.be(p + 1, 4);
      p += 5;
    } else {
      return -1;
    }
    if (2 * n > this.end - p) throw GIVE_UP;
    this.int = n;
    return p;
  }

  /** String header at `p`, or −1 when there is no string there; sets `int` = byte length. */
  private strHeader(p: number): number {
    this.need(p, 1);
    const c = this.b[p] as number;
    let n: number;
    if ((c & 0xe0) === 0xa0) {
      n = c & 0x1f;
      p += 1;
    } else if (c === 0xd9) {
      n = this.be(p + 1, 1);
      p += 2;
    } else if (c === 0xda) {
      n = this.be(p + 1, 2);
      p += 3;
    } else if (c === 0xdb) {
      n = this.be(p + 1, 4);
      p += 5;
    } else {
      return -1;
    }
    this.need(p, n);
    this.int = n;
    return p;
  }

  private bytesEqual(p: number, n: number, want: Uint8Array): boolean {
    if (n !== want.length) return false;
    const b = this.b;
    for (let i = 0; i < n; i++) if (b[p + i] !== want[i]) return false;
    return true;
  }

  /**
   * An integer in a format the general decoder turns into a JS number (fixints, 8/16/32-bit):
   * sets `int`, returns the next position; −1 when the value at `p` is anything else.
   */
  private smallInt(p: number): number {
    this.need(p, 1);
    const b = this.b;
    const c = b[p] as number;
    if (c < 0x80) {
      this.int = c;
      return p + 1;
    }
    if (c >= 0xe0) {
      this.int = c - 0x100;
      return p + 1;
    }
    switch (c) {
      case 0xcc:
        this.int = this.be(p + 1, 1);
        return p + 2;
      case 0xcd:
        this.int = this.be(p + 1, 2);
        return p + 3;
      case 0xce:
        this.int = this.be(p + 1, 4);
        return p + 5;
      case 0xd0:
        this.int = (this.be(p + 1, 1) << 24) >> 24;
        return p + 2;
      case 0xd1:
        this.int = (this.be(p + 1, 2) << 16) >> 16;
        return p + 3;
      case 0xd2:
        this.int = this.be(p + 1, 4) | 0;
        return p + 5;
      default:
        return -1;
    }
  }

  /** `int` or null (nil): as `optInt` of the general decoder, on small-int formats only. */
  private optInt(p: number): number {
    if (this.b[p] === 0xc0) return p + 1; // caller checks for nil first where the value matters
    const q = this.smallInt(p);
    if (q < 0) throw GIVE_UP;
    return q;
  }

  /** An engine hash (u64/i64 integer, or bytes → last 8 big-endian): sets `hashHi`/`hashLo`. */
  private hash(p: number): number {
    this.need(p, 1);
    const b = this.b;
    const c = b[p] as number;
    if (c < 0x80) {
      this.hashHi = 0;
      this.hashLo = c;
      return p + 1;
    }
    switch (c) {
      case 0xcf: // uint64
      case 0xd3: // int64: two's complement is the u64 the general path computes
        this.hashHi = this.be(p + 1, 4);
        this.hashLo = this.be(p + 5, 4);
        return p + 9;
      case 0xc4:
      case 0xc5:
      case 0xc6: {
        const w = c === 0xc4 ? 1 : c === 0xc5 ? 2 : 4;
        const n = this.be(p + 1, w);
        const s = p + 1 + w;
        this.need(s, n);
        if (n === 0) throw GIVE_UP;
        let hi = 0;
        let lo = 0;
        for (let i = Math.max(0, n - 8); i < n; i++) {
          hi = ((hi << 8) | (lo >>> 24)) >>> 0;
          lo = ((lo << 8) | (b[s + i] as number)) >>> 0;
        }
        this.hashHi = hi;
        this.hashLo = lo;
        return s + n;
      }
      default: {
        const q = this.smallInt(p);
        if (q < 0) throw GIVE_UP; // floats and anything else: the general path decides
        this.hashHi = this.int < 0 ? 0xffffffff : 0;
        this.hashLo = this.int >>> 0;
        return q;
      }
    }
  }

  /** Skips one well-formed value the general decoder would accept; gives up on ext types. */
  private skip(p: number, depth: number): number {
    this.need(p, 1);
    const c = this.b[p] as number;
    if (c < 0x80 || c >= 0xe0 || c === 0xc0 || c === 0xc2 || c === 0xc3) return p + 1;
    let q = this.strHeader(p);
    if (q >= 0) return q + this.int;
    switch (c) {
      case 0xc4:
      case 0xc5:
      case 0xc6: {
        const w = c === 0xc4 ? 1 : c === 0xc5 ? 2 : 4;
        const n = this.be(p + 1, w);
        this.need(p + 1 + w, n);
        return p + 1 + w + n;
      }
      case 0xca:
        this.need(p, 5);
        return p + 5;
      case 0xcb:
        this.need(p, 9);
        return p + 9;
      case 0xcf:
      case 0xd3:
        this.need(p, 9);
        return p + 9;
    }
    q = this.smallInt(p);
    if (q >= 0) return q;
    if (depth >= MAX_DEPTH) throw GIVE_UP;
    q = this.mapHeader(p);
    if (q >= 0) {
      for (let i = this.int; i > 0; i--) q = this.skip(this.mapKey(q), depth + 1);
      return q;
    }
    if ((c & 0xf0) === 0x90 || c === 0xdc || c === 0xdd) {
      q = this.arrayHeader(p);
      for (let i = this.int; i > 0; i--) q = this.skip(q, depth + 1);
      return q;
    }
    throw GIVE_UP; // 0xc1 (never used), ext types
  }

  /** Skips a map key the general decoder accepts (a string other than `__proto__`, or a number). */
  private mapKey(p: number): number {
    const q = this.strHeader(p);
    if (q >= 0) {
      if (this.bytesEqual(q, this.int, PROTO)) throw GIVE_UP;
      return q + this.int;
    }
    const c = this.b[p];
    if (c === 0xca || c === 0xcb) return this.skip(p, 0);
    const r = this.smallInt(p); // 64-bit formats decode to bigint: not a valid key
    if (r < 0) throw GIVE_UP;
    return r;
  }

  // ---- the batch ----------------------------------------------------------------------------

  private batch(): number {
    const out = this.out as CompactKvEvents;
    let p = this.mapHeader(0);
    let tsAt = -1;
    let dpAt = -1;
    if (p >= 0) {
      let sawEvents = false;
      for (let i = this.int; i > 0; i--) {
        const v = this.strHeader(p);
        if (v < 0) {
          p = this.skip(this.mapKey(p), 0);
          continue;
        }
        const n = this.int;
        if (this.bytesEqual(v, n, K_EVENTS)) {
          if (sawEvents) throw GIVE_UP;
          sawEvents = true;
          p = this.events(v + n);
        } else if (this.bytesEqual(v, n, K_TS)) {
          if (tsAt >= 0) throw GIVE_UP;
          tsAt = v + n;
          p = this.skip(tsAt, 0);
        } else if (this.bytesEqual(v, n, K_DP)) {
          if (dpAt >= 0) throw GIVE_UP;
          dpAt = v + n;
          p = this.skip(dpAt, 0);
        } else {
          p = this.skip(this.mapKey(p), 0);
        }
      }
      if (!sawEvents || tsAt < 0) throw GIVE_UP;
    } else {
      p = this.arrayHeader(0);
      const n = this.int;
      if (n < 2) throw GIVE_UP;
      tsAt = p;
      p = this.events(this.skip(p, 0));
      if (n >= 3) {
        dpAt = p;
        p = this.skip(p, 0);
      }
      for (let i = 3; i < n; i++) p = this.skip(p, 0);
    }
    out.ts = this.timestamp(tsAt);
    if (dpAt < 0 || this.b[dpAt] === 0xc0) {
      out.dataParallelRank = null;
    } else {
      this.optInt(dpAt);
      if (this.int < 0) throw GIVE_UP;
      out.dataParallelRank = this.int;
    }
    return p;
  }

  private timestamp(p: number): number {
    const b = this.b;
    const c = b[p] as number;
    let ts: number;
    if (c === 0xcb || c === 0xca) {
      const w = c === 0xcb ? 8 : 4;
      this.need(p + 1, w);
      const dv = new DataView(b.buffer, b.byteOffset + p + 1, w);
      ts = w === 8 ? dv.getFloat64(0) : dv.getFloat32(0);
    } else {
      if (this.smallInt(p) < 0) throw GIVE_UP;
      ts = this.int;
    }
    if (!Number.isFinite(ts)) throw GIVE_UP;
    return ts;
  }

  private events(p: number): number {
    const out = this.out as CompactKvEvents;
    p = this.arrayHeader(p);
    const n = this.int;
    out.reserveEvents(n);
    for (let i = 0; i < n; i++) p = this.event(p);
    return p;
  }

  private event(p: number): number {
    const out = this.out as CompactKvEvents;
    this.seen = 0;
    this.kind = -1;
    this.hashStart = out.hashTotal;
    this.hashCount = -1;
    this.tokenStart = out.tokenTotal;
    this.tokenCount = -1;
    this.blockSize = 0;
    this.hasParent = 0;
    this.loraId = null;
    this.loraNameAt = -1;
    this.mediumAt = -1;
    this.extraAt = -1;
    const q = this.mapHeader(p);
    if (q >= 0) {
      p = q;
      for (let i = this.int; i > 0; i--) {
        const v = this.strHeader(p);
        if (v < 0) {
          p = this.skip(this.mapKey(p), 0);
          continue;
        }
        const f = this.fieldOfKey(v, this.int);
        p = v + this.int;
        p = f === F_IGNORED ? this.skip(p, 0) : this.field(f, p);
      }
      if (this.kind < 0) throw GIVE_UP; // no "type"
    } else {
      p = this.arrayHeader(p);
      const n = this.int;
      if (n === 0) throw GIVE_UP;
      p = this.field(F_TYPE, p);
      const at = this.kind === EVENT_STORED ? STORED_AT : this.kind === EVENT_REMOVED ? REMOVED_AT : CLEARED_AT;
      if ((this.kind === EVENT_STORED && n < 5) || (this.kind === EVENT_REMOVED && n < 2)) throw GIVE_UP;
      for (let i = 1; i < n; i++) p = i < at.length ? this.field(at[i] as number, p) : this.skip(p, 0);
    }
    this.finishEvent();
    return p;
  }

  /** Which field a map key names (`__proto__` gives up: the general decoder rejects it). */
  private fieldOfKey(p: number, n: number): number {
    const c = this.b[p];
    let f: number;
    switch (n) {
      case 4:
        f = F_TYPE;
        break;
      case 12:
        f = F_HASHES;
        break;
      case 17:
        f = F_PARENT;
        break;
      case 9:
        f = c === 0x74 ? F_TOKENS : c === 0x6c ? F_LORA_NAME : c === 0x67 ? F_GROUP : F_IGNORED;
        if (c === 0x5f && this.bytesEqual(p, n, PROTO)) throw GIVE_UP;
        break;
      case 10:
        f = c === 0x62 ? F_BLOCK_SIZE : F_EXTRA;
        break;
      case 7:
        f = F_LORA_ID;
        break;
      case 6:
        f = F_MEDIUM;
        break;
      case 18:
        f = F_KIND;
        break;
      default:
        return F_IGNORED;
    }
    return f !== F_IGNORED && this.bytesEqual(p, n, KEY_BYTES[f] as Uint8Array) ? f : F_IGNORED;
  }

  /** Reads field `f` at `p` (validating it as the general decoder would), returns the next position. */
  private field(f: number, p: number): number {
    const bit = 1 << f;
    if (this.seen & bit) throw GIVE_UP; // a repeated key: the last one wins there, leave it to it
    this.seen |= bit;
    const b = this.b;
    const isNil = p < this.end && b[p] === 0xc0;
    switch (f) {
      case F_TYPE: {
        const v = this.strHeader(p);
        if (v < 0) throw GIVE_UP;
        const n = this.int;
        if (this.bytesEqual(v, n, TAG_STORED)) this.kind = EVENT_STORED;
        else if (this.bytesEqual(v, n, TAG_REMOVED)) this.kind = EVENT_REMOVED;
        else if (this.bytesEqual(v, n, TAG_CLEARED)) this.kind = EVENT_CLEARED;
        else throw GIVE_UP;
        return v + n;
      }
      case F_HASHES: {
        const out = this.out as CompactKvEvents;
        p = this.arrayHeader(p);
        const n = this.int;
        out.reserveHashes(n);
        const s = this.hashStart;
        for (let i = 0; i < n; i++) {
          p = this.hash(p);
          out.hashHi[s + i] = this.hashHi;
          out.hashLo[s + i] = this.hashLo;
          out.extra[s + i] = 0;
        }
        this.hashCount = n;
        out.hashTotal = s + n;
        return p;
      }
      case F_PARENT:
        if (isNil) return p + 1;
        p = this.hash(p);
        this.hasParent = 1;
        this.parentHi = this.hashHi;
        this.parentLo = this.hashLo;
        return p;
      case F_TOKENS:
        return this.tokens(p);
      case F_BLOCK_SIZE:
        p = this.smallInt(p);
        if (p < 0 || this.int <= 0) throw GIVE_UP;
        this.blockSize = this.int;
        return p;
      case F_LORA_ID:
        if (isNil) return p + 1;
        p = this.optInt(p);
        this.loraId = this.int;
        return p;
      case F_GROUP:
        return this.optInt(p);
      case F_MEDIUM:
      case F_LORA_NAME:
      case F_KIND: {
        if (isNil) return p + 1;
        const v = this.strHeader(p);
        if (v < 0) throw GIVE_UP;
        if (f === F_MEDIUM) this.mediumAt = p;
        else if (f === F_LORA_NAME) this.loraNameAt = p;
        return v + this.int;
      }
      case F_EXTRA: {
        if (isNil) return p + 1;
        this.extraAt = p;
        p = this.arrayHeader(p);
        this.extraCount = this.int;
        for (let i = this.int; i > 0; i--) p = this.skip(p, 0);
        return p;
      }
      default:
        return this.skip(p, 0);
    }
  }

  private tokens(p: number): number {
    const out = this.out as CompactKvEvents;
    p = this.arrayHeader(p);
    const n = this.int;
    out.reserveTokens(n);
    const b = this.b;
    const end = this.end;
    const toks = out.tokens;
    let t = this.tokenStart;
    let i = 0;
    // while 5 bytes (the widest accepted token) remain for every token left, skip bounds checks
    for (const stop = t + Math.min(n, Math.floor((end - p) / 5)); t < stop; i++) {
      const c = b[p] as number;
      if (c < 0x80) {
        toks[t++] = c;
        p += 1;
      } else if (c === 0xce) {
        toks[t++] = (((b[p + 1] as number) << 24) | ((b[p + 2] as number) << 16) | ((b[p + 3] as number) << 8) | (b[p + 4] as number)) >>> 0;
        p += 5;
      } else if (c === 0xcd) {
        toks[t++] = ((b[p + 1] as number) << 8) | (b[p + 2] as number);
        p += 3;
      } else {
        break;
      }
    }
    for (; i < n; i++) {
      if (p >= end) throw GIVE_UP;
      const c = b[p] as number;
      if (c < 0x80) {
        toks[t++] = c;
        p += 1;
      } else if (c === 0xcd && p + 3 <= end) {
        toks[t++] = ((b[p + 1] as number) << 8) | (b[p + 2] as number);
        p += 3;
      } else if (c === 0xce && p + 5 <= end) {
        toks[t++] = (((b[p + 1] as number) << 24) | ((b[p + 2] as number) << 16) | ((b[p + 3] as number) << 8) | (b[p + 4] as number)) >>> 0;
        p += 5;
      } else {
        p = this.smallInt(p);
        if (p < 0 || this.int < 0) throw GIVE_UP; // negative ids, floats, 64-bit formats
        toks[t++] = this.int;
      }
    }
    this.tokenCount = n;
    out.tokenTotal = t;
    return p;
  }

  /** Checks what the event's type requires and records it in `out`. */
  private finishEvent(): void {
    const out = this.out as CompactKvEvents;
    const e = out.count;
    const kind = this.kind;
    out.kind[e] = kind;
    if (kind === EVENT_STORED) {
      if (this.hashCount < 0 || this.tokenCount < 0 || this.blockSize <= 0) throw GIVE_UP;
    } else {
      out.tokenTotal = this.tokenStart; // token_ids of another type are ignored
      if (kind === EVENT_REMOVED) {
        if (this.hashCount < 0) throw GIVE_UP;
      } else {
        out.hashTotal = this.hashStart;
        this.hashCount = 0;
      }
    }
    out.hashStart[e] = this.hashStart;
    out.hashCount[e] = this.hashCount;
    out.tokenStart[e] = this.tokenStart;
    out.tokenCount[e] = kind === EVENT_STORED ? this.tokenCount : 0;
    out.blockSize[e] = this.blockSize;
    out.hasParent[e] = this.hasParent;
    out.parentHi[e] = this.parentHi;
    out.parentLo[e] = this.parentLo;
    out.medium[e] = this.mediumAt < 0 ? (kind === EVENT_CLEARED ? 0 : 1) : this.mediumBitAt(this.mediumAt);
    if (kind === EVENT_STORED) {
      out.lora[e] = this.hasParent === 0 ? this.loraAt() : null;
      if (this.extraAt >= 0) this.extraDigests();
    }
    out.count = e + 1;
  }

  private mediumBitAt(p: number): number {
    const v = this.strHeader(p);
    const n = this.int;
    if (this.bytesEqual(v, n, GPU)) return 1;
    if (this.bytesEqual(v, n, CPU)) return 2;
    return mediumBit(this.decodeValue(this.b.subarray(p, this.end)) as string);
  }

  private loraAt(): string | null {
    if (this.loraNameAt >= 0) {
      return this.decodeValue(this.b.subarray(this.loraNameAt, this.end)) as string;
    }
    return this.loraId === null ? null : String(this.loraId);
  }

  /** Digests of the non-null extra keys of the event's blocks (extra keys past the last block are unused). */
  private extraDigests(): void {
    const out = this.out as CompactKvEvents;
    let p = this.arrayHeader(this.extraAt);
    const n = Math.min(this.extraCount, this.hashCount);
    for (let i = 0; i < n; i++) {
      const q = this.skip(p, 0);
      if (this.b[p] !== 0xc0) out.extra[this.hashStart + i] = blockKeyExtraDigest(this.decodeValue(this.b.subarray(p, this.end)));
      p = q;
    }
  }
}
