/**
 * Long stress run (not in CI): random KV events, a share of them malformed, applied to a
 * KvBlockIndex (identity keys) and to a reference model (hash → holders); malformed events must
 * be counted and change nothing, and direct calls with bad ranges must throw and change nothing.
 * Heap usage is printed at intervals to show memory stays flat.
 *
 *   pnpm --filter @kvmgr/router stress [ops=1e7] [seed=19]
 */
import { type KvEvent, createRng, isKvmgrError } from '@kvmgr/core';
import { KvBlockIndex, createPrefixMatch } from '../src/kv-block-index.js';

const OPS = Number(process.argv[2] ?? 1e7);
const SEED = Number(process.argv[3] ?? 19);
const gc = (globalThis as { gc?: () => void }).gc;
const INSTANCES = ['a', 'b'];
const MEDIA = [null, 'GPU', 'CPU', 'DISK'] as const;
const TIER = { GPU: 'gpu', CPU: 'cpu', DISK: 'disk' } as const;
const UNIVERSE = 4096;

function check(cond: boolean, what: string): void {
  if (!cond) throw new Error(`stress: ${what}`);
}

const rng = createRng(SEED);
const rnd = () => rng.next();
const index = new KvBlockIndex({ engineKeys: 'identity', maxKeys: 1 << 16, maxInstancesPerKey: 8, maxInstances: 4 });
for (const i of INSTANCES) index.addInstance(i);
/** hash → "instance|tier" holders. */
const model = new Map<number, Set<string>>();
const hashes = (n: number) => Array.from({ length: n }, () => Math.floor(rnd() * UNIVERSE));
const tierOf = (m: (typeof MEDIA)[number]) => (m === null ? 'gpu' : TIER[m]);

const MALFORMED: (() => unknown)[] = [
  () => null,
  () => ({ type: 'BlockStored' }),
  () => ({ type: 'BlockRemoved' }),
  () => ({ type: 'BlockStored', blockHashes: [5n, 6], parentBlockHash: null, tokenIds: [], blockSize: 1 }),
  () => ({ type: 'BlockStored', blockHashes: [5n], parentBlockHash: null, tokenIds: [], blockSize: 1, medium: 7 }),
  () => ({ type: 'BlockRemoved', blockHashes: [5n, 'x'] }),
  () => ({ type: 'AllBlocksCleared', medium: 'TAPE' }),
  () => ({ type: 'toString' }),
];

const t0 = performance.now();
const every = Math.max(1, Math.floor(OPS / 10));
for (let i = 1; i <= OPS; i++) {
  const inst = INSTANCES[Math.floor(rnd() * INSTANCES.length)] as string;
  const r = rnd();
  if (r < 0.45) {
    const medium = MEDIA[Math.floor(rnd() * MEDIA.length)] as (typeof MEDIA)[number];
    const hs = hashes(1 + Math.floor(rnd() * 4));
    index.applyEvent(inst, { type: 'BlockStored', blockHashes: hs.map(BigInt), parentBlockHash: null, tokenIds: [], blockSize: 16, medium });
    for (const h of hs) {
      let s = model.get(h);
      if (!s) model.set(h, (s = new Set()));
      s.add(`${inst}|${tierOf(medium)}`);
    }
  } else if (r < 0.85) {
    const medium = MEDIA[Math.floor(rnd() * MEDIA.length)] as (typeof MEDIA)[number];
    const hs = hashes(1 + Math.floor(rnd() * 4));
    index.applyEvent(inst, { type: 'BlockRemoved', blockHashes: hs.map(BigInt), medium });
    for (const h of hs) {
      const s = model.get(h);
      s?.delete(`${inst}|${tierOf(medium)}`);
      if (s?.size === 0) model.delete(h);
    }
  } else if (r < 0.86) {
    index.applyEvent(inst, { type: 'AllBlocksCleared' });
    for (const [h, s] of model) {
      for (const x of [...s]) if (x.startsWith(`${inst}|`)) s.delete(x);
      if (s.size === 0) model.delete(h);
    }
  } else if (r < 0.95) {
    const malformed = index.stats.malformedEvents;
    const applied = index.stats.eventsApplied;
    const size = index.size;
    index.applyEvent(inst, (MALFORMED[Math.floor(rnd() * MALFORMED.length)] as () => unknown)() as KvEvent);
    check(index.stats.malformedEvents === malformed + 1 && index.stats.eventsApplied === applied && index.size === size, 'a malformed event was applied');
  } else {
    const keys = new Uint32Array(4);
    const size = index.size;
    const which = Math.floor(rnd() * 4);
    try {
      if (which === 0) index.recordBlocks(inst, keys, 'gpu', 0, 8);
      else if (which === 1) index.addSpeculative(inst, keys, 0, 2, Number.NaN);
      else if (which === 2) index.recordBlocks(inst, keys, 'gpu', -1, 2);
      else index.matchPrefix(keys, 2, 0, createPrefixMatch(1));
      throw new Error('stress: a bad call returned');
    } catch (e) {
      check(isKvmgrError(e, 'KVMGR_INVALID_ARGUMENT'), `bad call threw ${String(e)}`);
      check(index.size === size, 'a bad call changed the index');
    }
  }
  if (i % 1024 === 0) {
    check(index.size === model.size, `index holds ${index.size} keys, model ${model.size}`);
    for (let k = 0; k < 16; k++) {
      const h = Math.floor(rnd() * UNIVERSE);
      const got = index
        .holders(0, h)
        .map((x) => `${x.instanceId}|${x.tier}`)
        .sort();
      const want = [...(model.get(h) ?? [])].sort();
      check(JSON.stringify(got) === JSON.stringify(want), `holders of ${h}: ${got} != ${want}`);
    }
  }
  if (i % every === 0) {
    gc?.();
    const mb = (process.memoryUsage().heapUsed / 2 ** 20).toFixed(1);
    console.log(`KvBlockIndex ${String(i).padStart(9)} ops  heapUsed ${mb.padStart(6)} MiB  keys ${index.size}  malformed ${index.stats.malformedEvents}  ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
}
