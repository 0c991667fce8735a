/**
 * Byte-level BPE pieces shared by the tokenizers (Llama 3's, Qwen's): {@link CachedBpeEncoder},
 * an exact, bounded cache in front of a BPE library's encoding, and GPT-2's byte alphabet.
 *
 * Why the cache is exact: a byte-level BPE tokenizer first splits the text at special tokens, then
 * splits each text segment into pre-tokens with one regex, and encodes every pre-token on its own
 * (merges never cross a pre-token boundary). So a pre-token's ids depend on the pre-token's string
 * alone, and a segment's ids on the segment's string alone: caching pre-token → ids and segment →
 * ids across calls gives the same ids as encoding from scratch. Segments are what repeat in LLM
 * traffic (the chat template puts every message between special tokens, so a shared system prompt
 * or the earlier turns of a conversation are segments seen before); pre-tokens repeat within and
 * across texts (words, numbers, punctuation), so even new text is mostly cache hits and costs the
 * pre-token regex plus one lookup per piece.
 *
 * A pre-token is sent to the library alone only when the pre-token regex, run on it alone, gives
 * back the whole of it (so the library encodes it as that one pre-token); otherwise, and this has
 * not been seen in practice, the whole segment is encoded by the library as it stands.
 *
 * This module imports no tokenizer library (each tokenizer's module brings its own).
 *
 * @see huggingface/tokenizers:tokenizers/src/models/bpe/model.rs (the same per-word cache, bounded)
 */
import { LRUCache } from 'lru-cache';

/**
 * Byte of each character of byte-level BPE's alphabet (GPT-2's `bytes_to_unicode`: printable
 * Latin-1 bytes stand for themselves, the other 68 bytes for U+0100…U+0143), -1 for the others.
 * @see openai/gpt-2:src/encoder.py (`bytes_to_unicode`)
 */
export const BYTE_OF_CHAR = ((): Int16Array => {
  const byteOf = new Int16Array(256 + 68).fill(-1);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    byteOf[printable ? b : 256 + n++] = b;
  }
  return byteOf;
})();

/**
 * A string with no reference to the text it was cut from: V8 keeps a slice of 13 characters or
 * more as a view on its parent, which a cache key would then hold alive (a whole request body
 * for each cached message). JSON round-trips every code unit, lone surrogates included.
 */
function detached(s: string): string {
  return s.length < 13 ? s : (JSON.parse(JSON.stringify(s)) as string);
}

/** Cache bounds of a {@link CachedBpeEncoder} (Llama 3's, Qwen's). */
export interface CachedLlama3EncoderOptions {
  /** Pre-tokens kept (each a short string and its few ids). @default 65536 */
  readonly maxPieces?: number;
  /**
   * Segments (text between special tokens) kept, bounded by their total size in UTF-16 code
   * units plus 4 per token id (2 code units ≈ 4 bytes, 1 id ≈ 8 bytes in a `number[]`). Segments
   * shorter than `minSegmentChars` are not kept (their pieces are). @default 16777216 (16 Mi)
   */
  readonly maxSegmentSize?: number;
  /** Segments kept at most, whatever their size (lru-cache allocates its lists for this many up front). @default 65536 */
  readonly maxSegments?: number;
  /** @default 32 */
  readonly minSegmentChars?: number;
}

/** Hit and miss counts of a {@link CachedBpeEncoder} since it was made. */
export interface TokenizerCacheStats {
  readonly segmentHits: number;
  readonly segmentMisses: number;
  readonly pieceHits: number;
  readonly pieceMisses: number;
  /** Segments encoded by the library whole because a pre-token did not re-split to itself. */
  readonly wholeSegmentFallbacks: number;
  readonly segments: number;
  readonly pieces: number;
}

/**
 * What {@link CachedBpeEncoder} needs of one byte-level BPE tokenizer: its special-token split,
 * its pre-token regex, its normalisation, and the reference library's encoding of one pre-token.
 */
export interface BpeEncoding {
  /** Global regex of the special (added) token strings split out before anything else. */
  readonly specialRe: RegExp;
  /** Id of a string `specialRe` matched. */
  specialId(token: string): number;
  /** Global, unicode pre-token regex. */
  readonly pretokenRe: RegExp;
  /** The same regex, sticky (anchored at `lastIndex`): does a pre-token, alone, split into exactly itself? */
  readonly pretokenStickyRe: RegExp;
  /** Applied to each segment before the pre-token split (Qwen: NFC); none when undefined. */
  readonly normalize?: (segment: string) => string;
  /** The library's ids of a text with no special token (no BOS/EOS): the reference. */
  encodeRaw(text: string): number[];
}

/**
 * Byte-level BPE encoding through two bounded LRU caches: segment → ids and pre-token → ids, with
 * the library encoding what is new (see the module comment for why this is exact). Same ids as
 * the library for every input; one instance is not safe to share across worker threads (it is
 * not shared memory).
 */
export class CachedBpeEncoder {
  private readonly bpe: BpeEncoding;
  private readonly pieces: LRUCache<string, readonly number[]>;
  private readonly segments: LRUCache<string, readonly number[]>;
  private readonly minSegmentChars: number;
  private segmentHits = 0;
  private segmentMisses = 0;
  private pieceHits = 0;
  private pieceMisses = 0;
  private fallbacks = 0;

  /**
   * @param bpe - the tokenizer's split, regexes and reference encoding.
   * @param options - cache bounds, see {@link CachedLlama3EncoderOptions}.
   */
  constructor(bpe: BpeEncoding, options: CachedLlama3EncoderOptions = {}) {
    this.bpe = bpe;
    this.pieces = new LRUCache({ max: options.maxPieces ?? 65536 });
    this.segments = new LRUCache({ max: options.maxSegments ?? 65536, maxSize: options.maxSegmentSize ?? 1 << 24, sizeCalculation: (ids, key) => key.length + 4 * ids.length + 1 });
    this.minSegmentChars = options.minSegmentChars ?? 32;
  }

  /**
   * Token ids of a text, without BOS/EOS; special-token strings in the text become their ids.
   *
   * @param text - any string.
   * @returns token ids, a new array the caller may keep or change.
   */
  encode(text: string): number[] {
    // each part's ids first (cached arrays as they are), then one copy into an array of the final
    // length: pushing ~2,000 ids one by one grows the array several times (about 3× its size in
    // garbage per prompt, the largest allocation of a routing decision)
    const parts: (readonly number[] | number)[] = [];
    let n = 0;
    const re = this.bpe.specialRe;
    re.lastIndex = 0;
    let prev = 0;
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
      if (m.index > prev) {
        const ids = this.segmentIds(text.slice(prev, m.index));
        parts.push(ids);
        n += ids.length;
      }
      parts.push(this.bpe.specialId(m[0]));
      n++;
      prev = m.index + m[0].length;
    }
    if (prev < text.length) {
      const ids = this.segmentIds(prev === 0 ? text : text.slice(prev));
      parts.push(ids);
      n += ids.length;
    }
    // a preallocated array beyond V8's fast-elements limit for `new Array(n)` would be a slow dictionary one
    const out: number[] = n <= 50_000 ? new Array<number>(n) : [];
    let k = 0;
    for (const p of parts) {
      if (typeof p === 'number') out[k++] = p;
      else for (let i = 0; i < p.length; i++) out[k++] = p[i] as number;
    }
    return out;
  }

  /** Counts since construction, and the entries held now. */
  stats(): TokenizerCacheStats {
    return {
      segmentHits: this.segmentHits,
      segmentMisses: this.segmentMisses,
      pieceHits: this.pieceHits,
      pieceMisses: this.pieceMisses,
      wholeSegmentFallbacks: this.fallbacks,
      segments: this.segments.size,
      pieces: this.pieces.size,
    };
  }

  /** Empties both caches (the counts stay). */
  clear(): void {
    this.pieces.clear();
    this.segments.clear();
  }

  /** The ids of a segment (text with no special token): the cached array on a hit (not to be changed), else a new one (then cached). */
  private segmentIds(segment: string): readonly number[] {
    const keep = segment.length >= this.minSegmentChars;
    if (keep) {
      const hit = this.segments.get(segment);
      if (hit !== undefined) {
        this.segmentHits++;
        return hit;
      }
      this.segmentMisses++;
    }
    let ids: number[] = [];
    const normal = this.bpe.normalize === undefined ? segment : this.bpe.normalize(segment);
    if (!this.encodePieces(normal, ids)) {
      this.fallbacks++;
      ids = this.bpe.encodeRaw(normal);
    }
    if (keep) this.segments.set(detached(segment), ids);
    return ids;
  }

  /** Appends a segment's ids piece by piece; false (and `out` partly written) when a piece does not re-split to itself. */
  private encodePieces(segment: string, out: number[]): boolean {
    const re = this.bpe.pretokenRe;
    re.lastIndex = 0;
    let prev = 0;
    for (let m = re.exec(segment); m !== null; m = re.exec(segment)) {
      const p = m[0];
      if (p.length === 0) return false; // no alternative matches empty; were one to, the library's split is the reference
      // the library keeps text between matches as a piece too (none in practice: every code point matches an alternative)
      if (m.index > prev && !this.encodePiece(segment.slice(prev, m.index), out)) return false;
      if (!this.encodePiece(p, out)) return false;
      prev = m.index + p.length;
    }
    return prev >= segment.length || this.encodePiece(segment.slice(prev), out);
  }

  private encodePiece(piece: string, out: number[]): boolean {
    let ids = this.pieces.get(piece);
    if (ids !== undefined) this.pieceHits++;
    else {
      this.pieceMisses++;
      const re = this.bpe.pretokenStickyRe;
      re.lastIndex = 0;
      const m = re.exec(piece);
      if (m === null || m[0].length !== piece.length) return false;
      ids = this.bpe.encodeRaw(piece);
      this.pieces.set(detached(piece), ids);
    }
    for (let i = 0; i < ids.length; i++) out.push(ids[i] as number);
    return true;
  }
}

