/**
 * Prompts as text that the server's tokenizer turns back into exactly the intended number of
 * tokens (Llama 3's tokenizer, the one adapter-vllm and the kvmgr engine server use).
 *
 * The words are Llama 3 vocabulary entries of the form `" word"` (a space, then ASCII letters)
 * that encode back to themselves alone. Llama 3's pre-tokenizer splits text into ` ?\p{L}+`
 * pieces, so a concatenation of such words encodes to exactly one token per word: a token-id
 * prompt of length n maps id by id onto a text of n words, and equal token-id prefixes give
 * equal text prefixes, so the trace's prefix sharing survives in text form.
 *
 * @see meta-llama/llama3 (tokenizer.py: the pre-tokenizer pattern)
 */
import { decodeTokens, encodeText } from '@kvmgr/adapter-vllm';

/** Token ids scanned for words (Llama 3's ordinary range, below the special tokens). */
const VOCAB_END = 128_000;

let words: readonly string[] | undefined;

/** The word list (built once, on first use: ~128k decodes). */
export function textWords(): readonly string[] {
  if (words !== undefined) return words;
  const out: string[] = [];
  for (let id = 0; id < VOCAB_END; id++) {
    const w = decodeTokens([id]);
    if (!/^ [A-Za-z]{2,}$/.test(w)) continue;
    const back = encodeText(w);
    if (back.length === 1 && back[0] === id) out.push(w);
  }
  words = out;
  return out;
}

/**
 * The text of a token-id prompt: each id becomes word `id mod |words|`, so the text is one word
 * per id and encodes (without BOS) to exactly `ids.length` tokens.
 * @param ids - token ids (any non-negative integers).
 * @returns text starting with a space; `''` for no ids.
 */
export function promptText(ids: readonly number[]): string {
  const w = textWords();
  let s = '';
  for (const id of ids) s += w[id % w.length] as string;
  return s;
}
