/**
 * Two writers on one real `redis-server` (started here on a free loopback port): any interleaving
 * of store / speculative store / remove / clear (whole endpoint, chunked, or one tier) from two
 * connections leaves Redis equal to the in-memory reference model run in the order Redis
 * executed the operations. The order comes from `MONITOR` (Redis' own log of the commands it
 * runs, in execution order, with the client that sent each): the first script of each
 * operation fixes its place; a chunked clear's later scripts are continuations (its cut makes it
 * atomic at its first script). Every removal count must match the model's at that place, and
 * at the end the raw content (fields per block key, endpoint sets, no clear left in progress)
 * must equal the model's.
 */
import type { Tier } from '@kvmgr/core';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryBlockIndexStore } from './index-store.js';
import { DEFAULT_TIER_WEIGHTS, KvBlockIndex } from './kv-block-index.js';
import { RedisBlockIndexStore, blockKeyHex, redisKeyPrefix } from './redis-block-index-store.js';
import { type RedisTestServer, keysOf, startRedisServer } from './redis-test-server.js';

let server: RedisTestServer;
let wa: Redis;
let wb: Redis;
let check: Redis;
let monitor: Redis;
/** Commands Redis ran, in order: [source address, args]. */
const seen: [string, string[]][] = [];
let addrA = '';
let addrB = '';
let nsSeq = 0;

async function addrOf(r: Redis): Promise<string> {
  const info = String(await r.call('CLIENT', 'INFO'));
  const m = /\baddr=(\S+)/.exec(info);
  if (m === null) throw new Error(`no addr in CLIENT INFO: ${info}`);
  return m[1] as string;
}

beforeAll(async () => {
  server = await startRedisServer();
  wa = new Redis(server.url);
  wb = new Redis(server.url);
  check = new Redis(server.url);
  // run every script once on each connection before the log starts (ioredis sends EVAL the first time)
  for (const c of [wa, wb]) {
    const warm = new RedisBlockIndexStore(c, { namespace: 'warm', clearChunkKeys: 1 });
    const k = keysOf([1, 2]);
    await warm.store('x', k, 'gpu');
    await warm.remove('x', k, 'gpu', 0, 1);
    await warm.clear('x', 'cpu');
    await warm.store('x', k, 'gpu');
    await warm.clear('x');
    await warm.lookup(k, 2, 0, DEFAULT_TIER_WEIGHTS);
  }
  addrA = await addrOf(wa);
  addrB = await addrOf(wb);
  monitor = await new Redis(server.url).monitor();
  monitor.on('monitor', (_time: string, args: string[], source: string) => {
    if (source === addrA || source === addrB) seen.push([source, args]);
  });
  const t0 = Date.now();
  while (!(await monitorSees())) expect(Date.now() - t0).toBeLessThan(5000);
});

/** True once the monitor reports a command of writer A. */
async function monitorSees(): Promise<boolean> {
  seen.length = 0;
  await wa.echo('monitor-probe');
  await new Promise((res) => setTimeout(res, 20));
  return seen.some(([, a]) => a[0]?.toLowerCase() === 'echo');
}

afterAll(async () => {
  monitor?.disconnect();
  wa?.disconnect();
  wb?.disconnect();
  check?.disconnect();
  await server?.stop();
});

const EPS = ['a', 'b', 'c'];
const TIERS: Tier[] = ['gpu', 'cpu', 'disk'];
const promptArb = fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 1, maxLength: 6 });
type Op =
  | { k: 'store'; ep: number; p: number[]; tier: Tier; from: number; to: number }
  | { k: 'spec'; ep: number; p: number[]; from: number; to: number; exp: number }
  | { k: 'remove'; ep: number; p: number[]; tier: Tier; from: number; to: number }
  | { k: 'clear'; ep: number; tier: Tier | undefined };
const range = (p: number[], a: number, b: number) => {
  const x = a % (p.length + 1);
  const y = b % (p.length + 1);
  return { from: Math.min(x, y), to: Math.max(x, y) };
};
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc
      .record({ ep: fc.nat(1), p: promptArb, tier: fc.constantFrom(...TIERS), a: fc.nat(6), b: fc.nat(6) })
      .map(({ a, b, ...r }) => ({ k: 'store' as const, ...r, ...range(r.p, a, b) })),
  },
  {
    weight: 2,
    arbitrary: fc
      .record({ ep: fc.nat(1), p: promptArb, a: fc.nat(6), b: fc.nat(6), exp: fc.constantFrom(3, 8, 12, 20) })
      .map(({ a, b, ...r }) => ({ k: 'spec' as const, ...r, ...range(r.p, a, b) })),
  },
  {
    weight: 2,
    arbitrary: fc
      .record({ ep: fc.nat(1), p: promptArb, tier: fc.constantFrom(...TIERS), a: fc.nat(6), b: fc.nat(6) })
      .map(({ a, b, ...r }) => ({ k: 'remove' as const, ...r, ...range(r.p, a, b) })),
  },
  { weight: 2, arbitrary: fc.record({ ep: fc.nat(1), tier: fc.constantFrom<Tier | undefined>(undefined, undefined, 'gpu', 'cpu') }).map((r) => ({ k: 'clear' as const, ...r })) },
);
/** One writer's operations, each with how many event-loop turns it waits first and whether it awaits its reply. */
const writerArb = fc.array(fc.record({ op: opArb, gap: fc.nat(3), wait: fc.boolean() }), { minLength: 1, maxLength: 25 });

/** True when the operation sends a script (empty ranges send nothing). */
const sends = (op: Op) => op.k === 'clear' || op.to > op.from;

async function apply(s: MemoryBlockIndexStore | RedisBlockIndexStore, op: Op): Promise<number | undefined> {
  const ep = EPS[op.ep] as string;
  switch (op.k) {
    case 'store':
      await s.store(ep, keysOf(op.p), op.tier, op.from, op.to);
      return undefined;
    case 'spec':
      await s.storeSpeculative(ep, keysOf(op.p), op.from, op.to, op.exp);
      return undefined;
    case 'remove':
      return s.remove(ep, keysOf(op.p), op.tier, op.from, op.to);
    case 'clear':
      await s.clear(ep, op.tier);
      return undefined;
  }
}

async function runWriter(s: RedisBlockIndexStore, ops: { op: Op; gap: number; wait: boolean }[]): Promise<(number | undefined)[]> {
  const pending: Promise<number | undefined>[] = [];
  for (const { op, gap, wait } of ops) {
    for (let i = 0; i < gap; i++) await new Promise((r) => setImmediate(r));
    const p = apply(s, op);
    pending.push(p);
    if (wait) await p;
  }
  return Promise.all(pending);
}

/** A script call (`EVALSHA <sha>` or `EVAL <source>`, then the key count and the keys). */
const isScript = (args: string[]) => args[0]?.toLowerCase() === 'evalsha' || args[0]?.toLowerCase() === 'eval';
/** A chunked clear's later scripts: `EVALSHA <sha> 3 <e:ep> <clock> <clearing> <ep> 0 …`. */
const isContinuation = (args: string[]) => args[2] === '3' && String(args[4]).endsWith(':clock') && args[7] === '0';

/** Redis' content of a namespace as `{ block hex: sorted fields }` (speculative values kept) and `{ endpoint: sorted members }`. */
async function dump(prefix: string): Promise<{ blocks: Record<string, string[]>; sets: Record<string, string[]>; clearing: Record<string, string> }> {
  const blocks: Record<string, string[]> = {};
  for (const k of (await check.keys(`${prefix}b:*`)).sort()) {
    const h = await check.hgetall(k);
    blocks[k.slice(prefix.length + 2)] = Object.entries(h)
      .map(([f, v]) => (f.startsWith('s|') ? `${f}=${v}` : f))
      .sort();
  }
  const sets: Record<string, string[]> = {};
  for (const ep of EPS) {
    const m = (await check.zrange(`${prefix}e:${ep}`, 0, -1)).sort();
    if (m.length > 0) sets[ep] = m;
  }
  return { blocks, sets, clearing: await check.hgetall(`${prefix}clearing`) };
}

/** The model's content in the same shape (speculative entries from a log of the model's own writes). */
function modelDump(mem: MemoryBlockIndexStore, specs: Map<string, number>): { blocks: Record<string, string[]>; sets: Record<string, string[]>; clearing: Record<string, string> } {
  const blocks: Record<string, string[]> = {};
  const sets: Record<string, Set<string>> = {};
  const add = (hex: string, field: string, ep: string) => {
    let l = blocks[hex];
    if (l === undefined) {
      l = [];
      blocks[hex] = l;
    }
    l.push(field);
    let s = sets[ep];
    if (s === undefined) {
      s = new Set();
      sets[ep] = s;
    }
    s.add(hex);
  };
  for (const ep of EPS) mem.index.forEachHeld(ep, (hi, lo, tier) => add(blockKeyHex(hi, lo), `${tier[0]}|${ep}`, ep));
  for (const [k, exp] of specs) {
    const [ep, hex] = k.split(' ') as [string, string];
    add(hex, `s|${ep}=${exp}`, ep);
  }
  for (const l of Object.values(blocks)) l.sort();
  const out: Record<string, string[]> = {};
  for (const ep of EPS) if (sets[ep] !== undefined) out[ep] = [...(sets[ep] as Set<string>)].sort();
  return { blocks: Object.fromEntries(Object.entries(blocks).sort(([a], [b]) => (a < b ? -1 : 1))), sets: out, clearing: {} };
}

/**
 * The model's speculative entries, kept beside it (`forEachHeld` lists confirmed copies only), by
 * the index's rules: not written over a confirmed copy; dropped by a confirmed copy and by a
 * clear of the whole endpoint; kept by a remove or a clear of one tier.
 */
function trackSpecs(specs: Map<string, number>, mem: MemoryBlockIndexStore, op: Op): void {
  const ep = EPS[op.ep] as string;
  const heldConfirmed = (hex: string) => {
    let held = false;
    mem.index.forEachHeld(ep, (hi, lo) => {
      if (blockKeyHex(hi, lo) === hex) held = true;
    });
    return held;
  };
  if (op.k === 'clear') {
    if (op.tier === undefined) for (const k of [...specs.keys()]) if (k.startsWith(`${ep} `)) specs.delete(k);
    return;
  }
  if (op.k === 'remove') return;
  const k = keysOf(op.p);
  for (let b = op.from; b < op.to; b++) {
    const hex = blockKeyHex(k[2 * b] as number, k[2 * b + 1] as number);
    if (op.k === 'store') specs.delete(`${ep} ${hex}`);
    else if (!heldConfirmed(hex)) specs.set(`${ep} ${hex}`, op.exp);
  }
}

describe('RedisBlockIndexStore: two writers, any interleaving', () => {
  it('leaves Redis equal to the reference model run in Redis’ execution order', async () => {
    let interleaved = 0;
    let insideClear = 0;
    await fc.assert(
      fc.asyncProperty(writerArb, writerArb, async (opsA, opsB) => {
        const ns = `w${process.pid}-${nsSeq++}`;
        const prefix = redisKeyPrefix(ns);
        const sa = new RedisBlockIndexStore(wa, { namespace: ns, clearChunkKeys: 1 });
        const sb = new RedisBlockIndexStore(wb, { namespace: ns, clearChunkKeys: 1 });
        seen.length = 0;
        const [resA, resB] = await Promise.all([runWriter(sa, opsA), runWriter(sb, opsB)]);
        // the order Redis ran the operations in: one first script per operation that sends one
        const wantA = opsA.filter((o) => sends(o.op)).length;
        const wantB = opsB.filter((o) => sends(o.op)).length;
        const firsts = () => seen.filter(([, a]) => isScript(a) && String(a[3]).startsWith(prefix) && !isContinuation(a));
        const t0 = Date.now();
        while (firsts().length < wantA + wantB) {
          expect(Date.now() - t0, 'MONITOR lines').toBeLessThan(5000);
          await new Promise((r) => setTimeout(r, 5));
        }
        const log = seen.filter(([, a]) => isScript(a) && String(a[3]).startsWith(prefix));
        const order = firsts().map(([src]) => (src === addrA ? 0 : 1));
        expect(order.filter((w) => w === 0)).toHaveLength(wantA);
        expect(order.filter((w) => w === 1)).toHaveLength(wantB);
        let switches = 0;
        for (let i = 1; i < order.length; i++) if (order[i] !== order[i - 1]) switches++;
        if (switches >= 2) interleaved++;
        // another writer's script between a chunked clear's first and last scripts
        let open = -1;
        for (const [src, a] of log) {
          const w = src === addrA ? 0 : 1;
          if (isContinuation(a)) {
            if (open !== -1 && open !== w) insideClear++;
            open = w;
          } else if (a[2] === '3' && String(a[4]).endsWith(':clock') && a[7] === '1') open = w;
          else if (open !== -1 && open !== w) open = -2;
        }

        // the model, in that order
        const mem = new MemoryBlockIndexStore({ index: new KvBlockIndex({ maxInstancesPerKey: 16 }) });
        const specs = new Map<string, number>();
        const queues = [opsA.map((o, i) => ({ ...o, got: resA[i] })), opsB.map((o, i) => ({ ...o, got: resB[i] }))];
        const next = (w: number) => {
          const q = queues[w] as { op: Op; got: number | undefined }[];
          for (;;) {
            const x = q.shift();
            if (x === undefined) throw new Error(`writer ${w}: more scripts than operations`);
            if (sends(x.op)) return x;
            // an operation that sends nothing changes nothing (and removes nothing) in both
            expect(x.got ?? 0).toBe(0);
          }
        };
        for (const w of order) {
          const x = next(w);
          trackSpecs(specs, mem, x.op);
          const want = await apply(mem, x.op);
          expect(x.got, `writer ${w} ${JSON.stringify(x.op)}`).toEqual(want);
        }
        expect(await dump(prefix)).toEqual(modelDump(mem, specs));
        // and the lookups agree at every time (expiry included)
        for (let id = 0; id < 8; id++) {
          const k = keysOf([id, (id + 1) % 8, (id + 2) % 8]);
          for (const now of [0, 10, 25]) {
            const plain = (m: ReadonlyMap<string, { blocks: number; weightedBlocks: number }>) => Object.fromEntries([...m].map(([e, v]) => [e, [v.blocks, Math.round(v.weightedBlocks * 1e9)]]).sort());
            expect(plain(await sa.lookup(k, 3, now, DEFAULT_TIER_WEIGHTS))).toEqual(plain(await mem.lookup(k, 3, now, DEFAULT_TIER_WEIGHTS)));
          }
        }
      }),
      { numRuns: 80 },
    );
    console.info(`two writers: ${interleaved}/80 runs interleaved (≥ 2 switches), ${insideClear} scripts of the other writer ran inside a chunked clear`);
    expect(interleaved).toBeGreaterThan(0);
  });
});
