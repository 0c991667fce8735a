/**
 * Golden tests for the KV-event wire: bytes written by hand from the msgpack spec and DESIGN §6
 * (every encoding vLLM has shipped) → typed events; then encode → decode round trips.
 */
import type { KvEvent, KvEventBatch } from '@kvmgr/core';
import { isKvmgrError } from '@kvmgr/core';
import { describe, expect, it } from 'vitest';
import { KvEventDecoder } from './decode.js';
import { KvEventEncoder } from './encode.js';
import { REPLAY_END_SEQ, decodeSeq, encodeSeq } from './wire.js';

/** Hex pieces → bytes (spaces ignored). */
function bytes(...hex: string[]): Uint8Array {
  return Uint8Array.from(Buffer.from(hex.join('').replace(/\s+/g, ''), 'hex'));
}
/** msgpack fixstr (0xa0 | length, then UTF-8), for strings shorter than 32 bytes. */
function s(text: string): string {
  const b = Buffer.from(text, 'utf8');
  if (b.length >= 32) throw new Error('fixstr only');
  return (0xa0 | b.length).toString(16) + b.toString('hex');
}

const TS = 'cb 3ff8000000000000'; // float64 1.5
const H1 = 'cf dab89baa7b5857c0'; // uint64 15760518052499183552 (from the vLLM v0.26.0 capture)
const H1N = 15760518052499183552n;
const dec = new KvEventDecoder();

function expectProtocol(f: () => unknown, message: RegExp): void {
  try {
    f();
  } catch (e) {
    expect(isKvmgrError(e, 'KVMGR_PROTOCOL'), String(e)).toBe(true);
    expect((e as Error).message).toMatch(message);
    return;
  }
  expect.unreachable('expected a KVMGR_PROTOCOL error');
}

const storedDefaults = { loraId: null, medium: null, loraName: null, extraKeys: null, groupIdx: null, kvCacheSpecKind: null };

describe('decode: array batch, legacy tagged-array events', () => {
  it('reads BlockStored arrays of every length (5 … 11 fields, plus an unknown 12th)', () => {
    const head = `${s('BlockStored')} 91 01 c0 94 01020304 04`; // tag, [1], parent nil, [1,2,3,4], block_size 4
    const tails = [
      '', // 5: lora_id trimmed
      'c0', // 6: lora_id nil
      `c0 ${s('GPU')}`,
      `c0 ${s('CPU')} ${s('sql')}`,
      `c0 ${s('GPU')} c0 91 ${s('img')}`,
      `c0 ${s('GPU')} c0 91 c0 01`,
      `c0 ${s('GPU')} c0 91 c0 01 ${s('full_attention')}`,
      `c0 ${s('GPU')} c0 91 c0 01 ${s('full_attention')} 2a`, // 12: unknown field, ignored
    ];
    const events = tails.map((t, i) => `${(0x95 + i).toString(16)} ${head} ${t}`);
    const payload = bytes(`93 ${TS} ${(0x90 + events.length).toString(16)}`, ...events, '00');
    const batch = dec.decodeBatch(payload);
    expect(batch.ts).toBe(1.5);
    expect(batch.dataParallelRank).toBe(0);
    const base = { type: 'BlockStored', blockHashes: [1n], parentBlockHash: null, tokenIds: [1, 2, 3, 4], blockSize: 4 };
    expect(batch.events).toEqual([
      { ...base, ...storedDefaults },
      { ...base, ...storedDefaults },
      { ...base, ...storedDefaults, medium: 'GPU' },
      { ...base, ...storedDefaults, medium: 'CPU', loraName: 'sql' },
      { ...base, ...storedDefaults, medium: 'GPU', extraKeys: ['img'] },
      { ...base, ...storedDefaults, medium: 'GPU', extraKeys: [null], groupIdx: 1 },
      { ...base, ...storedDefaults, medium: 'GPU', extraKeys: [null], groupIdx: 1, kvCacheSpecKind: 'full_attention' },
      { ...base, ...storedDefaults, medium: 'GPU', extraKeys: [null], groupIdx: 1, kvCacheSpecKind: 'full_attention' },
    ]);
  });

  it('reads BlockRemoved arrays of 2, 3 and 4 fields and AllBlocksCleared; a 2-element batch has no rank', () => {
    const payload = bytes(
      `92 ${TS} 94`,
      `92 ${s('BlockRemoved')} 92 05 06`,
      `93 ${s('BlockRemoved')} 91 07 ${s('CPU')}`,
      `94 ${s('BlockRemoved')} 91 08 c0 02`,
      `91 ${s('AllBlocksCleared')}`,
    );
    const batch = dec.decodeBatch(payload);
    expect(batch.dataParallelRank).toBeNull();
    expect(batch.events).toEqual([
      { type: 'BlockRemoved', blockHashes: [5n, 6n], medium: null, groupIdx: null, kvCacheSpecKind: null },
      { type: 'BlockRemoved', blockHashes: [7n], medium: 'CPU', groupIdx: null, kvCacheSpecKind: null },
      { type: 'BlockRemoved', blockHashes: [8n], medium: null, groupIdx: 2, kvCacheSpecKind: null },
      { type: 'AllBlocksCleared', medium: null },
    ]);
  });
});

// The event captured from vLLM v0.26.0 (DESIGN §6), 16 token ids 0..15, plus an unknown field.
const CAPTURED = [
  '8c', // map, 12 entries
  `${s('type')} ${s('BlockStored')}`,
  `${s('block_hashes')} 91 ${H1}`,
  `${s('parent_block_hash')} c0`,
  `${s('token_ids')} dc0010 000102030405060708090a0b0c0d0e0f`, // array16 of 16 fixints
  `${s('block_size')} 10`,
  `${s('lora_id')} c0`,
  `${s('medium')} ${s('GPU')}`,
  `${s('lora_name')} c0`,
  `${s('extra_keys')} 91 c0`,
  `${s('group_idx')} 00`,
  `${s('kv_cache_spec_kind')} ${s('full_attention')}`,
  `${s('future_field')} 93 010203`, // unknown: ignored
].join(' ');
const CAPTURED_EVENT: KvEvent = {
  type: 'BlockStored',
  blockHashes: [H1N],
  parentBlockHash: null,
  tokenIds: Array.from({ length: 16 }, (_, i) => i),
  blockSize: 16,
  loraId: null,
  medium: 'GPU',
  loraName: null,
  extraKeys: [null],
  groupIdx: 0,
  kvCacheSpecKind: 'full_attention',
};

describe('decode: map events (current vLLM) and map batches', () => {
  it('reads the captured v0.26.0 BlockStored map in an array batch', () => {
    const batch = dec.decodeBatch(bytes(`93 ${TS} 91`, CAPTURED, '03'));
    expect(batch).toEqual({ ts: 1.5, events: [CAPTURED_EVENT], dataParallelRank: 3 });
  });

  it('reads a map batch {ts, events, data_parallel_rank} with map BlockRemoved / AllBlocksCleared', () => {
    const payload = bytes(
      `83 ${s('ts')} ${TS}`,
      `${s('events')} 93`,
      CAPTURED,
      `83 ${s('type')} ${s('BlockRemoved')} ${s('block_hashes')} 91 ${H1} ${s('medium')} ${s('GPU')}`,
      `82 ${s('type')} ${s('AllBlocksCleared')} ${s('medium')} ${s('CPU')}`,
      `${s('data_parallel_rank')} c0`,
    );
    expect(dec.decodeBatch(payload)).toEqual({
      ts: 1.5,
      events: [
        CAPTURED_EVENT,
        { type: 'BlockRemoved', blockHashes: [H1N], medium: 'GPU', groupIdx: null, kvCacheSpecKind: null },
        { type: 'AllBlocksCleared', medium: 'CPU' },
      ],
      dataParallelRank: null,
    });
  });
});

describe('decode: hash encodings', () => {
  it('reads u64, small ints, negative i64 (two’s complement) and bytes (last 8, big-endian)', () => {
    const sha = '00112233445566778899aabbccddeeff0011223344556677 8899aabbccddeeff'; // 32 bytes
    const payload = bytes(
      `92 ${TS} 91 92 ${s('BlockRemoved')} 96`,
      H1,
      '2a', // fixint 42
      'ce ffffffff', // uint32
      'd3 fffffffffffffffe', // int64 -2
      'ff', // negative fixint -1
      `c4 20 ${sha}`, // bin8, 32 bytes: a sha256 digest
    );
    const [e] = dec.decodeBatch(payload).events;
    expect(e).toMatchObject({ blockHashes: [H1N, 42n, 0xffffffffn, 18446744073709551614n, 0xffffffffffffffffn, 0x8899aabbccddeeffn] });
  });
});

describe('decode: malformed input is a KVMGR_PROTOCOL error naming the bad part', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['not msgpack (truncated)', `93 ${TS} 91 92`, /not valid msgpack/],
    ['batch is a string', s('hello'), /batch: expected an array/],
    ['ts is a string', `92 ${s('x')} 90`, /batch\.ts: expected a finite number/],
    ['events not an array', `92 ${TS} 01`, /batch\.events/],
    ['unknown tag', `92 ${TS} 91 91 ${s('BlockMoved')}`, /events\[0\]\[0\]: expected an event tag/],
    ['unknown map type', `92 ${TS} 91 81 ${s('type')} ${s('Nope')}`, /events\[0\]\.type/],
    ['hash is a string', `92 ${TS} 91 92 ${s('BlockRemoved')} 92 01 ${s('x')}`, /events\[0\]\.block_hashes\[1\]: expected a u64\/i64 integer or bytes, got "x"/],
    ['negative token id', `92 ${TS} 91 95 ${s('BlockStored')} 91 01 c0 92 01 ff 02`, /events\[0\]\.token_ids\[1\]/],
    ['zero block size', `92 ${TS} 91 95 ${s('BlockStored')} 91 01 c0 90 00`, /events\[0\]\.block_size: expected a positive integer/],
    ['short BlockStored', `92 ${TS} 91 93 ${s('BlockStored')} 91 01 c0`, /events\[0\]: expected a BlockStored array/],
    ['event is a number', `92 ${TS} 91 07`, /events\[0\]: expected an event/],
    ['medium is a number', `92 ${TS} 91 93 ${s('BlockRemoved')} 91 01 05`, /events\[0\]\.medium: expected a string or null/],
  ];
  it.each(cases)('%s', (_name, hex, message) => {
    expectProtocol(() => dec.decodeBatch(bytes(hex)), message);
  });

  it('a bad event late in a batch throws: no partial batch is returned', () => {
    const payload = bytes(`92 ${TS} 92`, `91 ${s('AllBlocksCleared')}`, '07');
    expectProtocol(() => dec.decodeBatch(payload), /events\[1\]/);
  });

  it('checks frames: count, seq width, end marker on the live stream, topic UTF-8', () => {
    const ok = bytes(`92 ${TS} 90`);
    expect(dec.decodeMessage([Buffer.from('kv@pod@m'), encodeSeq(7), ok])).toEqual({ topic: 'kv@pod@m', seq: 7, batch: { ts: 1.5, events: [], dataParallelRank: null } });
    expectProtocol(() => dec.decodeMessage([Buffer.from(''), ok]), /expected 3 frames/);
    expectProtocol(() => dec.decodeMessage([Buffer.from(''), Buffer.alloc(4), ok]), /frame 1 \(seq\): expected 8 bytes/);
    expectProtocol(() => dec.decodeMessage([Buffer.from(''), encodeSeq(REPLAY_END_SEQ), ok]), /replay end marker/);
    expectProtocol(() => dec.decodeMessage([Buffer.from([0xff, 0xfe]), encodeSeq(1), ok]), /not UTF-8/);
  });
});

describe('seq frames', () => {
  it('are u64 big-endian; ff…ff is -1', () => {
    expect(Buffer.from(encodeSeq(0x0102030405)).toString('hex')).toBe('0000000102030405');
    expect(decodeSeq(bytes('0000000102030405'))).toBe(0x0102030405);
    expect(Buffer.from(encodeSeq(-1)).toString('hex')).toBe('ffffffffffffffff');
    expect(decodeSeq(bytes('ffffffffffffffff'))).toBe(-1);
  });
});

function richBatch(): KvEventBatch {
  const events: KvEvent[] = [];
  for (let i = 0; i < 16; i++) {
    const k = BigInt(i);
    if (i % 4 === 3) {
      events.push({ type: 'BlockRemoved', blockHashes: [H1N - k, 5n + k], medium: i % 8 === 3 ? 'CPU' : 'GPU', groupIdx: i % 2, kvCacheSpecKind: 'sliding_window' });
    } else if (i === 14) {
      events.push({ type: 'AllBlocksCleared', medium: 'GPU' });
    } else {
      events.push({
        type: 'BlockStored',
        blockHashes: [H1N - k, 0xffffffffffffffffn - k, 7n + k],
        parentBlockHash: i === 0 ? null : H1N + k,
        tokenIds: Array.from({ length: 48 }, (_, t) => t * 1000 + i),
        blockSize: 16,
        loraId: i % 3 === 0 ? null : i,
        medium: 'GPU',
        loraName: i % 3 === 0 ? null : `lora-${i}`,
        extraKeys: [null, ['mm-hash', 4], 'salt'],
        groupIdx: i % 2,
        kvCacheSpecKind: 'full_attention',
      });
    }
  }
  return { ts: 1717171717.25, events, dataParallelRank: 2 };
}

describe('encode', () => {
  it('writes the captured event byte for byte (map encoding, fields in vLLM order)', () => {
    const enc = new KvEventEncoder();
    const expected = bytes(
      `92 ${TS} 91`,
      CAPTURED.replace(/^8c/, '8b').replace(` ${s('future_field')} 93 010203`, ''),
    );
    const got = enc.encodeBatch({ ts: 1.5, events: [CAPTURED_EVENT] });
    expect(Buffer.from(got).toString('hex')).toBe(Buffer.from(expected).toString('hex'));
  });

  it('writes legacy arrays with trailing nulls trimmed', () => {
    const enc = new KvEventEncoder({ encoding: 'array' });
    const got = enc.encodeBatch({
      ts: 1.5,
      events: [
        { type: 'BlockStored', blockHashes: [1n], parentBlockHash: null, tokenIds: [1, 2, 3, 4], blockSize: 4 },
        { type: 'BlockRemoved', blockHashes: [H1N] },
        { type: 'AllBlocksCleared' },
      ],
      dataParallelRank: 1,
    });
    const expected = bytes(`93 ${TS} 93`, `96 ${s('BlockStored')} 91 01 c0 94 01020304 04 c0`, `92 ${s('BlockRemoved')} 91 ${H1}`, `91 ${s('AllBlocksCleared')}`, '01');
    expect(Buffer.from(got).toString('hex')).toBe(Buffer.from(expected).toString('hex'));
  });

  it.each([
    ['map events, array batch', { encoding: 'map', batchEncoding: 'array' }],
    ['array events, array batch', { encoding: 'array', batchEncoding: 'array' }],
    ['map events, map batch', { encoding: 'map', batchEncoding: 'map' }],
    ['array events, map batch', { encoding: 'array', batchEncoding: 'map' }],
  ] as const)('round-trips a 16-event batch with every field (%s)', (_n, opts) => {
    const batch = richBatch();
    const back = dec.decodeBatch(new KvEventEncoder(opts).encodeBatch(batch));
    expect(back.ts).toBe(batch.ts);
    expect(back.dataParallelRank).toBe(2);
    expect(back.events).toEqual(batch.events);
  });

  it('rejects hashes outside u64 with KVMGR_INVALID_ARGUMENT', () => {
    const enc = new KvEventEncoder();
    expect(() => enc.encodeBatch({ ts: 0, events: [{ type: 'BlockRemoved', blockHashes: [-1n] }] })).toThrow(/blockHashes\[0\]/);
  });
});
