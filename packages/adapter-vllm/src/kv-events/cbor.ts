/**
 * The few CBOR types vLLM's `sha256_cbor` block hash needs, encoded by hand in the canonical form
 * of RFC 8949 §4.2.1 (shortest integer heads, definite lengths), which is what Python's
 * `cbor2.dumps(value, canonical=True)` writes for these types. No CBOR library is installed;
 * this covers: unsigned/negative integers (number or bigint, |n| < 2^64), text strings, byte
 * strings, arrays (Python lists and tuples), null (None) and booleans. Floats and maps are
 * refused: vLLM's block-hash inputs do not contain them.
 *
 * @see https://www.rfc-editor.org/rfc/rfc8949#section-4.2.1
 */
import { invalidArgument } from '@kvmgr/core';

const utf8 = new TextEncoder();

/** Grows a byte buffer as CBOR items are appended. */
class Out {
  buf = new Uint8Array(256);
  len = 0;
  ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }
  head(major: number, n: number | bigint): void {
    this.ensure(9);
    const b = this.buf;
    const m = major << 5;
    if (typeof n === 'number' && n < 24) b[this.len++] = m | n;
    else if (typeof n === 'number' && n < 0x100) {
      b[this.len++] = m | 24;
      b[this.len++] = n;
    } else if (typeof n === 'number' && n < 0x10000) {
      b[this.len++] = m | 25;
      b[this.len++] = n >>> 8;
      b[this.len++] = n & 0xff;
    } else if (typeof n === 'number' && n < 0x100000000) {
      b[this.len++] = m | 26;
      new DataView(b.buffer).setUint32(this.len, n);
      this.len += 4;
    } else {
      b[this.len++] = m | 27;
      new DataView(b.buffer).setBigUint64(this.len, BigInt(n));
      this.len += 8;
    }
  }
  bytes(x: Uint8Array): void {
    this.ensure(x.length);
    this.buf.set(x, this.len);
    this.len += x.length;
  }
}

function smallest(n: bigint): number | bigint {
  return n < 0x100000000n ? Number(n) : n;
}

function item(o: Out, v: unknown, where: string): void {
  if (v === null || v === undefined) {
    o.ensure(1);
    o.buf[o.len++] = 0xf6;
  } else if (v === true || v === false) {
    o.ensure(1);
    o.buf[o.len++] = v ? 0xf5 : 0xf4;
  } else if (typeof v === 'number' || typeof v === 'bigint') {
    if (typeof v === 'number' && !Number.isSafeInteger(v)) throw invalidArgument(where, v, 'an integer (floats are not supported)');
    const n = BigInt(v);
    if (n >= 0n) {
      if (n >= 1n << 64n) throw invalidArgument(where, v, 'an integer below 2^64');
      o.head(0, smallest(n));
    } else {
      if (n < -(1n << 64n)) throw invalidArgument(where, v, 'an integer at or above -2^64');
      o.head(1, smallest(-1n - n));
    }
  } else if (typeof v === 'string') {
    const b = utf8.encode(v);
    o.head(3, b.length);
    o.bytes(b);
  } else if (v instanceof Uint8Array) {
    o.head(2, v.length);
    o.bytes(v);
  } else if (Array.isArray(v)) {
    o.head(4, v.length);
    for (let i = 0; i < v.length; i++) item(o, v[i], `${where}[${i}]`);
  } else {
    throw invalidArgument(where, v, 'an integer, string, bytes, array, boolean or null');
  }
}

/**
 * Canonical CBOR encoding of `value` (see the module comment for the types covered).
 *
 * @param value - integers (number/bigint), strings, `Uint8Array`, arrays, booleans, null.
 * @returns the encoded bytes.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` on floats, maps, other objects, or integers
 *   outside `[-2^64, 2^64)`.
 */
export function encodeCanonicalCbor(value: unknown): Uint8Array {
  const o = new Out();
  item(o, value, 'value');
  return o.buf.slice(0, o.len);
}
