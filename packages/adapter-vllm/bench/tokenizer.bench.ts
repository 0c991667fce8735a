import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRng } from '@kvmgr/core';
import llama3Tokenizer from 'llama3-tokenizer-js';
import type { BenchSuite } from '../../../bench/types.js';
import type { ChatMessage } from '../src/openai-api.js';
import { CachedLlama3Encoder } from '../src/tokenizer-cache.js';
import { renderChatTemplate } from '../src/tokenizer.js';

const CONVERSATIONS = 32;
const SYSTEM_PARAGRAPHS = 8;
/** Messages of history a client sends back (the oldest drop out, as chat clients truncate). */
const WINDOW = 8;

/** Paragraphs of real English (with code, tables and numbers): the repository's own docs. */
function paragraphs(): string[] {
  const docs = join(dirname(fileURLToPath(import.meta.url)), '../../../docs');
  const out: string[] = [];
  for (const f of readdirSync(docs).sort()) {
    if (!f.endsWith('.md')) continue;
    for (const p of readFileSync(join(docs, f), 'utf8').split(/\n\s*\n/)) if (p.length >= 80 && p.length <= 2000) out.push(p);
  }
  return out;
}

/**
 * A multi-turn chat workload without end: request `n` is conversation `n % 32`'s next user turn,
 * with its own system prompt (8 paragraphs, ~1–2k tokens), the last 8 messages of history and a
 * new user message (a paragraph with the turn number); the assistant's reply (another paragraph)
 * joins the history after it. Each call of `next()` returns the rendered Llama 3 chat text.
 */
function multiTurn(seed: number, corpus: readonly string[]): () => string {
  const rng = createRng(seed);
  const pick = () => corpus[Math.floor(rng.next() * corpus.length)] as string;
  const convs = Array.from({ length: CONVERSATIONS }, (_, c) => ({
    system: Array.from({ length: SYSTEM_PARAGRAPHS }, pick).join('\n\n'),
    history: [] as ChatMessage[],
    turn: 0,
    id: c,
  }));
  let n = 0;
  return () => {
    const c = convs[n++ % CONVERSATIONS] as (typeof convs)[number];
    c.turn++;
    c.history.push({ role: 'user', content: `Turn ${c.turn} of conversation ${c.id}: ${pick()}` });
    const text = renderChatTemplate([{ role: 'system', content: c.system }, ...c.history]);
    c.history.push({ role: 'assistant', content: pick() });
    while (c.history.length > WINDOW) c.history.shift();
    return text;
  };
}

/** Texts never seen before (shuffled paragraphs, a unique number), each one segment: only the pre-token cache can help. */
function freshTexts(seed: number, corpus: readonly string[]): () => string {
  const rng = createRng(seed);
  let n = 0;
  return () => {
    const parts: string[] = [];
    for (let i = 0; i < 6; i++) parts.push(corpus[Math.floor(rng.next() * corpus.length)] as string);
    return `Request ${n++}. ${parts.join('\n\n')}`;
  };
}

/**
 * Tokenisation with the cached encoder (segment → ids and pre-token → ids LRU caches, exact)
 * against `llama3-tokenizer-js` from scratch on the same inputs: a multi-turn chat workload
 * (a shared system prompt per conversation, history resent every turn) and texts never seen
 * before. Text: paragraphs of the repository's docs. Setup checks that the cached ids equal the
 * library's on 2,000 requests of each workload and records the caches' hit rates.
 */
export function createSuite(): BenchSuite {
  const corpus = paragraphs();
  const lib = (t: string) => llama3Tokenizer.encode(t, { bos: false, eos: false });
  // setup: exactness and hit rates, on a separate encoder
  const check = new CachedLlama3Encoder();
  let mismatches = 0;
  let tokens = 0;
  const chat = multiTurn(7, corpus);
  for (let i = 0; i < 2000; i++) {
    const t = chat();
    const a = lib(t);
    const b = check.encode(t);
    tokens += a.length;
    if (a.length !== b.length || a.some((x, j) => x !== b[j])) mismatches++;
  }
  const s = check.stats();
  const chatTokens = tokens / 2000;
  const fresh = freshTexts(11, corpus);
  const check2 = new CachedLlama3Encoder();
  tokens = 0;
  for (let i = 0; i < 2000; i++) {
    const t = fresh();
    const a = lib(t);
    const b = check2.encode(t);
    tokens += a.length;
    if (a.length !== b.length || a.some((x, j) => x !== b[j])) mismatches++;
  }
  const s2 = check2.stats();

  const chatLib = multiTurn(1, corpus);
  const chatCached = multiTurn(1, corpus);
  const freshLib = freshTexts(3, corpus);
  const freshCached = freshTexts(3, corpus);
  const enc = new CachedLlama3Encoder();
  const enc2 = new CachedLlama3Encoder();
  let sink = 0;
  return {
    name: 'tokenizer',
    notes: {
      paragraphs: corpus.length,
      mismatchesOf4000: mismatches,
      chatTokensPerRequest: Math.round(chatTokens),
      chatSegmentHitRate: Math.round((1e4 * s.segmentHits) / (s.segmentHits + s.segmentMisses)) / 1e4,
      chatPieceHitRate: Math.round((1e4 * s.pieceHits) / (s.pieceHits + s.pieceMisses)) / 1e4,
      freshTokensPerText: Math.round(tokens / 2000),
      freshPieceHitRate: Math.round((1e4 * s2.pieceHits) / (s2.pieceHits + s2.pieceMisses)) / 1e4,
      wholeSegmentFallbacks: s.wholeSegmentFallbacks + s2.wholeSegmentFallbacks,
    },
    cases: [
      { name: 'multi-turn chat request, llama3-tokenizer-js (peer)', fn: () => void (sink += lib(chatLib()).length), latencySamples: 300 },
      {
        name: 'multi-turn chat request, cached encoder',
        fn: () => void (sink += enc.encode(chatCached()).length),
        baseline: 'multi-turn chat request, llama3-tokenizer-js (peer)',
        latencySamples: 3000,
      },
      { name: 'new text, llama3-tokenizer-js (peer)', fn: () => void (sink += lib(freshLib()).length), latencySamples: 300 },
      { name: 'new text, cached encoder (pre-token cache)', fn: () => void (sink += enc2.encode(freshCached()).length), baseline: 'new text, llama3-tokenizer-js (peer)', latencySamples: 3000 },
    ],
  };
}
