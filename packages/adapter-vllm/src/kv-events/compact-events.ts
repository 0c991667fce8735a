/**
 * A batch of KV events in compact form: struct-of-typed-arrays, engine hashes as two u32 halves,
 * every token of the batch in one `Uint32Array`. It is what `KvEventDecoder.applyBatch` decodes
 * into (reused across batches, so steady-state decoding allocates almost nothing) and what
 * `EngineKeyMap.applyCompact` applies; no BigInt on either side.
 */

/** `kind` of a `BlockStored`. */
export const EVENT_STORED = 0;
/** `kind` of a `BlockRemoved`. */
export const EVENT_REMOVED = 1;
/** `kind` of an `AllBlocksCleared`. */
export const EVENT_CLEARED = 2;

/**
 * Events of one batch; event `e` is described by index `e` of the per-event arrays, its hashes
 * are `hashHi/hashLo[hashStart[e] .. hashStart[e] + hashCount[e])`, its tokens
 * `tokens[tokenStart[e] .. tokenStart[e] + tokenCount[e])`. Arrays are longer than `count`.
 */
export class CompactKvEvents {
  /** Batch timestamp, seconds since the epoch (float). */
  ts = 0;
  /** Data-parallel rank of the publisher, or null when the batch does not say. */
  dataParallelRank: number | null = null;
  /** Events held. */
  count = 0;
  /** Hashes held (all events). */
  hashTotal = 0;
  /** Tokens held (all events). */
  tokenTotal = 0;
  /** Per event: {@link EVENT_STORED}, {@link EVENT_REMOVED} or {@link EVENT_CLEARED}. */
  kind = new Uint8Array(64);
  /**
   * Per event: medium bit (`mediumBit`: GPU or null 1, CPU 2, disk 4, other 8); 0 for an
   * `AllBlocksCleared` without a medium (clears every medium).
   */
  medium = new Uint8Array(64);
  hashStart = new Int32Array(64);
  hashCount = new Int32Array(64);
  tokenStart = new Int32Array(64);
  tokenCount = new Int32Array(64);
  /** Per event: tokens per block (`BlockStored` only). */
  blockSize = new Int32Array(64);
  /** Per event: 1 when `parentHi/parentLo` hold the parent hash, 0 at sequence start. */
  hasParent = new Uint8Array(64);
  parentHi = new Uint32Array(64);
  parentLo = new Uint32Array(64);
  /**
   * Per event, for a `BlockStored` at sequence start: the LoRA that seeds the root key
   * (`lora_name`, else `String(lora_id)`), or null for the base model.
   */
  lora: (string | null)[] = [];
  /** Engine hashes, high and low u32 halves. */
  hashHi = new Uint32Array(256);
  hashLo = new Uint32Array(256);
  /** Per hash: `blockKeyExtraDigest` of the block's extra keys, 0 for none. */
  extra = new Uint32Array(256);
  /** Token ids of every `BlockStored`, back to back. */
  tokens = new Uint32Array(4096);

  /** Empties the batch (keeps the arrays). */
  reset(): void {
    this.count = 0;
    this.hashTotal = 0;
    this.tokenTotal = 0;
  }

  /** Makes room for `n` more events. */
  reserveEvents(n: number): void {
    const need = this.count + n;
    if (need <= this.kind.length) return;
    const cap = Math.max(need, this.kind.length * 2);
    this.kind = grow(this.kind, new Uint8Array(cap));
    this.medium = grow(this.medium, new Uint8Array(cap));
    this.hashStart = grow(this.hashStart, new Int32Array(cap));
    this.hashCount = grow(this.hashCount, new Int32Array(cap));
    this.tokenStart = grow(this.tokenStart, new Int32Array(cap));
    this.tokenCount = grow(this.tokenCount, new Int32Array(cap));
    this.blockSize = grow(this.blockSize, new Int32Array(cap));
    this.hasParent = grow(this.hasParent, new Uint8Array(cap));
    this.parentHi = grow(this.parentHi, new Uint32Array(cap));
    this.parentLo = grow(this.parentLo, new Uint32Array(cap));
  }

  /** Makes room for `n` more hashes. */
  reserveHashes(n: number): void {
    const need = this.hashTotal + n;
    if (need <= this.hashHi.length) return;
    const cap = Math.max(need, this.hashHi.length * 2);
    this.hashHi = grow(this.hashHi, new Uint32Array(cap));
    this.hashLo = grow(this.hashLo, new Uint32Array(cap));
    this.extra = grow(this.extra, new Uint32Array(cap));
  }

  /** Makes room for `n` more tokens. */
  reserveTokens(n: number): void {
    const need = this.tokenTotal + n;
    if (need <= this.tokens.length) return;
    this.tokens = grow(this.tokens, new Uint32Array(Math.max(need, this.tokens.length * 2)));
  }
}

function grow<T extends Uint8Array | Int32Array | Uint32Array>(from: T, to: T): T {
  to.set(from);
  return to;
}
