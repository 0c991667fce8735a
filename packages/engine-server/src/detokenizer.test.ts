import { decodeTokens, encodeText } from '@kvmgr/adapter-vllm';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IncrementalDetokenizer } from './detokenizer.js';

/** The windowed algorithm without the cached-token fast path (vLLM's detokenize_incrementally): the reference model. */
class WindowedReference {
  private readonly ids: number[] = [];
  private prefixOffset = 0;
  private readOffset = 0;
  push(tokenId: number): string {
    this.ids.push(tokenId);
    const prefix = decodeTokens(this.ids.slice(this.prefixOffset, this.readOffset));
    const full = decodeTokens(this.ids.slice(this.prefixOffset));
    if (full.length <= prefix.length || full.endsWith('\uFFFD')) return '';
    this.readOffset = this.ids.length;
    this.prefixOffset = Math.max(0, this.readOffset - 5);
    return full.slice(prefix.length);
  }
  flush(): string {
    if (this.readOffset === this.ids.length) return '';
    const prefix = decodeTokens(this.ids.slice(this.prefixOffset, this.readOffset));
    const full = decodeTokens(this.ids.slice(this.prefixOffset));
    this.readOffset = this.ids.length;
    return full.slice(prefix.length);
  }
}

// Whole-character tokens of multilingual text, and byte tokens that are fragments of UTF-8
// characters (ids 94–350 of Llama 3's vocabulary decode alone to U+FFFD or to one byte's char).
const TEXT_TOKENS = encodeText('héllo wörld 日本語のテキスト 🙂🚀 ñandú Ελληνικά, and plain ASCII words.');
const tokenArb = fc.oneof(fc.constantFrom(...TEXT_TOKENS), fc.integer({ min: 94, max: 350 }), fc.integer({ min: 0, max: 127_999 }));

describe('IncrementalDetokenizer', () => {
  it('streams exactly what the windowed reference streams, token by token, and the same text', () => {
    fc.assert(
      fc.property(fc.array(tokenArb, { maxLength: 60 }), (ids) => {
        const d = new IncrementalDetokenizer();
        const ref = new WindowedReference();
        let refText = '';
        for (const id of ids) {
          const got = d.push(id);
          const want = ref.push(id);
          expect(got).toBe(want);
          refText += want;
        }
        expect(d.flush()).toBe(ref.flush());
        expect(d.text.startsWith(refText)).toBe(true);
      }),
      { numRuns: 300, seed: 7 },
    );
  });

  it('whole-character text comes out whole: the stream concatenates to the decoded sequence', () => {
    const d = new IncrementalDetokenizer();
    let out = '';
    for (const id of TEXT_TOKENS) out += d.push(id);
    out += d.flush();
    expect(out).toBe(decodeTokens(TEXT_TOKENS));
    expect(d.text).toBe(out);
  });
});
