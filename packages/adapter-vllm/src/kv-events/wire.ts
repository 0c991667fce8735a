/**
 * Frame-level facts of vLLM's KV-event wire: the 8-byte big-endian sequence number, the replay
 * end marker (seq −1 = `ff…ff`), and the errors raised for malformed messages.
 *
 * @see vllm-project/vllm:vllm/distributed/kv_events.py
 */
import { KvmgrError, describeValue } from '@kvmgr/core';

/** The sequence value that ends a replay (−1 as a signed 64-bit integer). */
export const REPLAY_END_SEQ = -1;

const END_BYTES = new Uint8Array(8).fill(0xff);

/**
 * Encodes a sequence number as 8 bytes big-endian; −1 gives the replay end marker `ff…ff`.
 *
 * @param seq - an integer in `[0, 2^53)`, or −1.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for anything else.
 */
export function encodeSeq(seq: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  if (seq === REPLAY_END_SEQ) {
    b.set(END_BYTES);
    return b;
  }
  if (!Number.isSafeInteger(seq) || seq < 0) {
    throw new KvmgrError('KVMGR_INVALID_ARGUMENT', `seq must be an integer in [0, 2^53) or -1, got ${describeValue(seq)}`);
  }
  b.writeUInt32BE(Math.floor(seq / 4294967296), 0);
  b.writeUInt32BE(seq >>> 0, 4);
  return b;
}

/**
 * Decodes an 8-byte big-endian sequence frame: `ff…ff` gives −1 (replay end).
 *
 * @param frame - the seq frame.
 * @param where - what to name in the error (e.g. `frame 1 (seq)`).
 * @throws KvmgrError `KVMGR_PROTOCOL` when the frame is not 8 bytes or the value is ≥ 2^53.
 */
export function decodeSeq(frame: Uint8Array, where = 'seq frame'): number {
  if (frame.length !== 8) throw protocolError(`${where}: expected 8 bytes (u64 big-endian), got ${frame.length} bytes`);
  const dv = new DataView(frame.buffer, frame.byteOffset, 8);
  const hi = dv.getUint32(0);
  const lo = dv.getUint32(4);
  if (hi === 0xffffffff && lo === 0xffffffff) return REPLAY_END_SEQ;
  if (hi >= 0x200000) throw protocolError(`${where}: sequence number ${(BigInt(hi) << 32n) | BigInt(lo)} is beyond 2^53`);
  return hi * 4294967296 + lo;
}

/** A `KVMGR_PROTOCOL` error: a KV-event message is malformed. */
export function protocolError(message: string, cause?: unknown): KvmgrError {
  return new KvmgrError('KVMGR_PROTOCOL', `malformed KV event message: ${message}`, cause === undefined ? {} : { cause });
}
