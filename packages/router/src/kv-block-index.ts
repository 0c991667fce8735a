/**
 * The cluster-wide KV block index: block key → the instances (and tier) holding it, fed by
 * `KvEvent`s, by direct records, and by speculative entries written at routing time.
 *
 * Storage is typed arrays only. An open-addressing table (linear probing, backward-shift
 * deletion, slots `[hi, lo, entry+1, 0]`) maps a key to an entry; entries hold the key and
 * `[count, holder0 … holderN-1]`, where a holder is `(instanceIndex << 2) | tierCode`. Blocks of
 * one sequence are stored in order, so they usually get consecutive entries: a prefix walk
 * first tries entry `e + 1` for block `b + 1` and only probes the table when that misses, which
 * turns most of a 128-block walk into sequential memory reads. Keys are bounded by an LRU over
 * entries (touched on store), holders per key by `maxInstancesPerKey` (the oldest holder goes
 * first, as llm-d's per-key pod cache).
 *
 * @see llm-d/llm-d-kv-cache-manager: pkg/kvcache/kvblock/in_memory.go
 * @see ai-dynamo/dynamo: lib/llm/src/kv_router/indexer.rs
 */
import type { KvEvent, Tier } from '@kvmgr/core';
import { KvmgrError, invalidArgument, requirePositiveInt } from '@kvmgr/core';
import { type KeyNamespace, type LocalKeys, hashBlock, hashExtraKey, namespaceRoot } from './hash64.js';
import { kvEventProblem, tierCodeOfMedium } from './event-shape.js';

/** Tier of a holder; `speculative` = written at routing time, expires. */
export type HolderTier = Tier | 'speculative';

const TIER_NAMES: readonly HolderTier[] = ['gpu', 'cpu', 'disk', 'speculative'];
const SPEC = 3;

/** Per-tier weight of a matched block in the prefix score. */
export interface TierWeights {
  /** @default 1.0 */
  readonly gpu: number;
  /** @default 0.8 */
  readonly cpu: number;
  /** @default 0.5 */
  readonly disk: number;
  /** @default 1.0 */
  readonly speculative: number;
}

/** The default tier weights: gpu 1.0, cpu 0.8, disk 0.5, speculative 1.0. */
export const DEFAULT_TIER_WEIGHTS: TierWeights = Object.freeze({ gpu: 1, cpu: 0.8, disk: 0.5, speculative: 1 });

/** Options of a {@link KvBlockIndex}. */
export interface KvBlockIndexOptions {
  /** Most keys held; the least recently stored key is evicted beyond it. @default 1048576 */
  readonly maxKeys?: number;
  /**
   * Most (instance, tier) holders per key. Beyond it the oldest speculative holder is dropped,
   * else the oldest holder; a speculative entry never displaces a confirmed one. @default 8
   */
  readonly maxInstancesPerKey?: number;
  /** Most instances ever registered at once. @default 1024 */
  readonly maxInstances?: number;
  /**
   * How engine hashes become local keys: `hash-tokens` chains the event's token ids from the
   * parent's local key (needs token ids); `identity` uses the u64 engine hash itself
   * (`hi` = upper 32 bits, `lo` = lower 32 bits), for simulators that publish trace ids.
   * @default 'hash-tokens'
   */
  readonly engineKeys?: 'hash-tokens' | 'identity';
  /** Namespace of local keys (model). LoRA names from events are mixed in. @default {} */
  readonly namespace?: KeyNamespace;
  /** Tier weights for {@link KvBlockIndex.matchPrefix}. @default DEFAULT_TIER_WEIGHTS */
  readonly tierWeights?: Partial<TierWeights>;
  /**
   * Told of every change applied from a KV event, in local keys (a shared store mirrors an
   * engine's events through it). Not told of direct writes, speculative entries or LRU
   * evictions. @default undefined
   */
  readonly listener?: BlockIndexListener;
}

/**
 * Observes the confirmed changes {@link KvBlockIndex.applyEvent} makes, in local keys. Called
 * synchronously after the change; `keys` is only valid during the call.
 */
export interface BlockIndexListener {
  /** `blocks` blocks (`keys` = `[hi, lo]` pairs) stored by an instance in a tier. */
  stored(instanceId: string, keys: Uint32Array, blocks: number, tier: Tier): void;
  /** `blocks` blocks removed from an instance's tier (only those it held). */
  removed(instanceId: string, keys: Uint32Array, blocks: number, tier: Tier): void;
  /** Every block of an instance dropped (`tier` undefined: all tiers and speculative entries). */
  cleared(instanceId: string, tier: Tier | undefined): void;
}

/** Counters of an index; events that cannot be applied are counted, never fatal. */
export interface KvBlockIndexStats {
  eventsApplied: number;
  /** Events for an instance that was never added (or was removed). */
  unknownInstanceEvents: number;
  /** `BlockRemoved` hashes this instance never stored (or already removed). */
  unknownKeyRemovals: number;
  /** `BlockStored` whose parent hash is unknown: its blocks cannot be keyed and are skipped. */
  unknownParentBlocks: number;
  /** Events with a bad shape (token ids length, unknown medium). */
  malformedEvents: number;
  /** Keys evicted by the LRU bound. */
  keysEvicted: number;
  /** Holders dropped by the per-key bound. */
  holdersEvicted: number;
}

/** Per-instance result of a prefix match, indexed by instance index; reused between calls. */
export interface PrefixMatch {
  /** Consecutive matched blocks from the start, per instance index. */
  readonly matchedBlocks: Int32Array;
  /** Sum of tier weights over those blocks (best tier per block), per instance index. */
  readonly weightedBlocks: Float64Array;
  /** Blocks in the request. */
  totalBlocks: number;
}

/**
 * What a router needs from a block index; an in-memory {@link KvBlockIndex} now, a shared
 * (Redis/Valkey) backend later.
 */
export interface BlockIndex {
  /** Index of a registered instance, or -1. */
  instanceIndex(instanceId: string): number;
  /** Registers an instance (idempotent) and returns its index. */
  addInstance(instanceId: string): number;
  /** Capacity of instance indices (arrays in {@link PrefixMatch} have this length). */
  readonly maxInstances: number;
  /** Fills `out` for `keys` (blocks `[0, blocks)`), ignoring speculative entries expired at `nowUs`. */
  matchPrefix(keys: LocalKeys, blocks: number, nowUs: number, out: PrefixMatch): void;
  /** Speculative holders for blocks `[fromBlock, blocks)` until `expiresAtUs`. */
  addSpeculative(instanceId: string, keys: LocalKeys, fromBlock: number, blocks: number, expiresAtUs: number): void;
  /** Records blocks held by an instance (no engine hashes). */
  recordBlocks(instanceId: string, keys: LocalKeys, tier?: Tier, fromBlock?: number, blocks?: number): void;
}

/** Creates an empty {@link PrefixMatch} for an index with `maxInstances` instance slots. */
export function createPrefixMatch(maxInstances: number): PrefixMatch {
  return {
    matchedBlocks: new Int32Array(maxInstances),
    weightedBlocks: new Float64Array(maxInstances),
    totalBlocks: 0,
  };
}

interface EngineEntry {
  hi: number;
  lo: number;
  /** Bit per tier code (gpu 1, cpu 2, disk 4). */
  tiers: number;
}


/**
 * Requires integer blocks `0 ≤ fromBlock ≤ blocks ≤ keys.length / 2` of local keys (`[hi, lo]`
 * per block).
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` otherwise.
 */
function requireBlockRange(keys: unknown, fromBlock: unknown, blocks: unknown): void {
  if (!(keys instanceof Uint32Array) && !Array.isArray(keys)) throw invalidArgument('keys', keys, 'local keys (a Uint32Array of [hi, lo] pairs)');
  const n = keys.length >>> 1;
  if (typeof blocks !== 'number' || !Number.isInteger(blocks) || blocks < 0 || blocks > n) throw invalidArgument('blocks', blocks, `an integer in [0, ${n}] (keys hold ${n} blocks)`);
  if (typeof fromBlock !== 'number' || !Number.isInteger(fromBlock) || fromBlock < 0 || fromBlock > blocks) throw invalidArgument('fromBlock', fromBlock, `an integer in [0, ${blocks}]`);
}

function tierCode(field: string, tier: Tier): number {
  const c = tier === 'gpu' ? 0 : tier === 'cpu' ? 1 : tier === 'disk' ? 2 : -1;
  if (c < 0) throw invalidArgument(field, tier, 'one of "gpu", "cpu", "disk"');
  return c;
}

/**
 * The in-memory cluster block index.
 *
 * @example
 * ```ts
 * const index = new KvBlockIndex({ maxKeys: 1 << 16 });
 * index.addInstance('pod-a');
 * index.applyEvent('pod-a', { type: 'BlockStored', blockHashes: [1n], parentBlockHash: null,
 *   tokenIds: [1, 2, 3, 4], blockSize: 4 });
 * ```
 */
export class KvBlockIndex implements BlockIndex {
  readonly maxKeys: number;
  readonly maxInstancesPerKey: number;
  readonly maxInstances: number;
  readonly engineKeys: 'hash-tokens' | 'identity';
  readonly tierWeights: TierWeights;
  private readonly stride: number;
  private readonly mask: number;
  private readonly shift: number;
  private readonly tab: Uint32Array;
  private readonly eKey: Uint32Array;
  /**
   * `tab` and `eKey` read as int32 (the same bytes). Key halves are compared and passed around
   * as int32 internally: a u32 above 2^31 is not a small integer, and passing one to a function
   * boxes it (two heap numbers per block of every lookup and store).
   */
  private readonly tabI: Int32Array;
  private readonly eKeyI: Int32Array;
  private readonly eHold: Uint32Array;
  private readonly eUsed: Uint8Array;
  private readonly slotOf: Int32Array;
  private readonly prev: Int32Array;
  private readonly next: Int32Array;
  private readonly expiry: Float64Array;
  private readonly freeEntries: Int32Array;
  private freeTop: number;
  /** Entries never used yet are handed out in order; freed ones go to the stack. */
  private fresh = 0;
  private head = -1;
  private tail = -1;
  private count = 0;
  private readonly tierW: Float64Array;
  private readonly lastW: Float64Array;
  private readonly ids = new Map<string, number>();
  private readonly names: (string | undefined)[] = [];
  private readonly engineMaps: (Map<bigint, EngineEntry> | undefined)[] = [];
  private readonly ns: KeyNamespace;
  private readonly rootCache = new Map<string, LocalKeys>();
  private readonly scratch = new Uint32Array(2);
  private readonly listener: BlockIndexListener | undefined;
  /** Counters; see {@link KvBlockIndexStats}. */
  readonly stats: KvBlockIndexStats = {
    eventsApplied: 0,
    unknownInstanceEvents: 0,
    unknownKeyRemovals: 0,
    unknownParentBlocks: 0,
    malformedEvents: 0,
    keysEvicted: 0,
    holdersEvicted: 0,
  };

  /**
   * @param options - bounds, engine key mode, namespace, tier weights (see {@link KvBlockIndexOptions}).
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` on a non-positive bound, `maxInstances` > 2^20,
   *   or a negative tier weight.
   */
  constructor(options: KvBlockIndexOptions = {}) {
    this.maxKeys = requirePositiveInt('maxKeys', options.maxKeys ?? 1 << 20);
    this.maxInstancesPerKey = requirePositiveInt('maxInstancesPerKey', options.maxInstancesPerKey ?? 8);
    this.maxInstances = requirePositiveInt('maxInstances', options.maxInstances ?? 1024);
    if (this.maxInstances > 1 << 20) throw invalidArgument('maxInstances', this.maxInstances, 'at most 1048576');
    const mode = options.engineKeys ?? 'hash-tokens';
    if (mode !== 'hash-tokens' && mode !== 'identity') {
      throw invalidArgument('engineKeys', mode, '"hash-tokens" or "identity"');
    }
    this.engineKeys = mode;
    const tw = { ...DEFAULT_TIER_WEIGHTS, ...options.tierWeights };
    for (const t of TIER_NAMES) {
      const w = tw[t];
      if (typeof w !== 'number' || !Number.isFinite(w) || w < 0) throw invalidArgument(`tierWeights.${t}`, w, 'a finite number >= 0');
    }
    this.tierWeights = Object.freeze(tw);
    this.tierW = Float64Array.from([tw.gpu, tw.cpu, tw.disk, tw.speculative]);
    this.ns = options.namespace ?? {};
    this.listener = options.listener;
    this.stride = 1 + this.maxInstancesPerKey;
    let slots = 16;
    let bits = 4;
    while (slots < this.maxKeys * 1.5) {
      slots *= 2;
      bits++;
    }
    this.mask = slots - 1;
    this.shift = 32 - bits;
    this.tab = new Uint32Array(slots * 4);
    this.eKey = new Uint32Array(this.maxKeys * 2);
    this.tabI = new Int32Array(this.tab.buffer);
    this.eKeyI = new Int32Array(this.eKey.buffer);
    this.eHold = new Uint32Array(this.maxKeys * this.stride);
    this.eUsed = new Uint8Array(this.maxKeys);
    this.slotOf = new Int32Array(this.maxKeys);
    this.prev = new Int32Array(this.maxKeys);
    this.next = new Int32Array(this.maxKeys);
    this.expiry = new Float64Array(this.maxKeys * this.maxInstancesPerKey);
    this.freeEntries = new Int32Array(this.maxKeys);
    this.freeTop = 0;
    this.lastW = new Float64Array(this.maxInstances);
  }

  /** Number of keys held. */
  get size(): number {
    return this.count;
  }

  /** Registered instance ids, in index order (removed ones skipped). */
  instances(): string[] {
    return this.names.filter((n): n is string => n !== undefined);
  }

  /** @inheritdoc */
  instanceIndex(instanceId: string): number {
    return this.ids.get(instanceId) ?? -1;
  }

  /** The id of an instance index, or undefined. */
  instanceId(index: number): string | undefined {
    return this.names[index];
  }

  /**
   * Registers an instance (idempotent).
   * @returns its index (stable until {@link removeInstance}).
   * @throws KvmgrError `KVMGR_INVALID_STATE` when `maxInstances` are registered already.
   */
  addInstance(instanceId: string): number {
    const known = this.ids.get(instanceId);
    if (known !== undefined) return known;
    let idx = this.names.indexOf(undefined);
    if (idx < 0) idx = this.names.length;
    if (idx >= this.maxInstances) {
      throw new KvmgrError('KVMGR_INVALID_STATE', `cannot add instance ${JSON.stringify(instanceId)}: ${this.maxInstances} instances registered (maxInstances)`);
    }
    this.ids.set(instanceId, idx);
    this.names[idx] = instanceId;
    this.engineMaps[idx] = new Map();
    return idx;
  }

  /** Clears an instance's blocks and forgets it (an instance left). Unknown ids are ignored. */
  removeInstance(instanceId: string): void {
    const idx = this.ids.get(instanceId);
    if (idx === undefined) return;
    this.clear(instanceId);
    this.ids.delete(instanceId);
    this.names[idx] = undefined;
    this.engineMaps[idx] = undefined;
  }

  /**
   * Applies one KV event from an instance. Unknown instances, unknown keys and malformed events
   * are counted in {@link stats}; nothing throws. An event is checked whole before any of it is
   * applied (see `event-shape.ts`): a malformed one (bad type, medium, hashes, token ids or
   * block size, or not an object) changes nothing but `malformedEvents`. Unknown fields are
   * ignored.
   */
  applyEvent(instanceId: string, event: KvEvent): void {
    const inst = this.ids.get(instanceId);
    if (inst === undefined) {
      this.stats.unknownInstanceEvents++;
      return;
    }
    if (kvEventProblem(event, this.engineKeys === 'hash-tokens') !== undefined) {
      this.stats.malformedEvents++;
      return;
    }
    const emap = this.engineMaps[inst] as Map<bigint, EngineEntry>;
    switch (event.type) {
      case 'BlockStored': {
        const tier = tierCodeOfMedium(event.medium);
        const n = event.blockHashes.length;
        const bs = event.blockSize;
        // extra keys are hashed before anything is stored (a value JSON cannot encode is malformed)
        let extra: number[] | undefined;
        if (this.engineKeys === 'hash-tokens' && event.extraKeys != null) {
          extra = [];
          try {
            for (let i = 0; i < n; i++) {
              const x = event.extraKeys[i];
              extra.push(x == null ? 0 : hashExtraKey(x));
            }
          } catch {
            this.stats.malformedEvents++;
            return;
          }
        }
        let ph = 0;
        let pl = 0;
        if (this.engineKeys === 'hash-tokens') {
          if (event.parentBlockHash == null) {
            const root = this.root(event.loraName ?? (event.loraId == null ? undefined : String(event.loraId)));
            ph = root[0] as number;
            pl = root[1] as number;
          } else {
            const p = emap.get(event.parentBlockHash);
            if (p === undefined) {
              this.stats.unknownParentBlocks += n;
              this.stats.eventsApplied++;
              return;
            }
            ph = p.hi;
            pl = p.lo;
          }
        }
        const out = this.scratch;
        const told = this.listener === undefined ? undefined : new Uint32Array(2 * n);
        let guess = -2;
        for (let i = 0; i < n; i++) {
          const h = event.blockHashes[i] as bigint;
          let e = emap.get(h);
          if (e === undefined) {
            if (this.engineKeys === 'hash-tokens') {
              hashBlock(ph, pl, event.tokenIds, i * bs, (i + 1) * bs, extra === undefined ? 0 : (extra[i] as number), out, 0);
            } else {
              out[0] = Number((h >> 32n) & 0xffffffffn);
              out[1] = Number(h & 0xffffffffn);
            }
            e = { hi: out[0] as number, lo: out[1] as number, tiers: 0 };
            emap.set(h, e);
          }
          e.tiers |= 1 << tier;
          guess = this.store(e.hi, e.lo, inst, tier, 0, guess + 1);
          ph = e.hi;
          pl = e.lo;
          if (told !== undefined) {
            told[2 * i] = e.hi;
            told[2 * i + 1] = e.lo;
          }
        }
        if (told !== undefined && n > 0) this.listener?.stored(instanceId, told, n, TIER_NAMES[tier] as Tier);
        break;
      }
      case 'BlockRemoved': {
        const tier = tierCodeOfMedium(event.medium);
        if (tier < 0) {
          this.stats.malformedEvents++;
          return;
        }
        const told = this.listener === undefined ? undefined : new Uint32Array(2 * event.blockHashes.length);
        let toldN = 0;
        for (const h of event.blockHashes) {
          const e = emap.get(h);
          if (e === undefined || (e.tiers & (1 << tier)) === 0) {
            this.stats.unknownKeyRemovals++;
            continue;
          }
          e.tiers &= ~(1 << tier);
          if (e.tiers === 0) emap.delete(h);
          this.unstore(e.hi, e.lo, inst, tier);
          if (told !== undefined) {
            told[2 * toldN] = e.hi;
            told[2 * toldN++ + 1] = e.lo;
          }
        }
        if (told !== undefined && toldN > 0) this.listener?.removed(instanceId, told, toldN, TIER_NAMES[tier] as Tier);
        break;
      }
      case 'AllBlocksCleared': {
        if (event.medium == null) {
          this.clearInstance(inst, -1);
          this.listener?.cleared(instanceId, undefined);
        } else {
          const tier = tierCodeOfMedium(event.medium);
          if (tier < 0) {
            this.stats.malformedEvents++;
            return;
          }
          this.clearInstance(inst, tier);
          this.listener?.cleared(instanceId, TIER_NAMES[tier] as Tier);
        }
        break;
      }
      default:
        this.stats.malformedEvents++;
        return;
    }
    this.stats.eventsApplied++;
  }

  /** Applies events in order (see {@link applyEvent}). */
  applyEvents(instanceId: string, events: readonly KvEvent[]): void {
    if (!Array.isArray(events)) {
      this.stats.malformedEvents++;
      return;
    }
    for (const e of events) this.applyEvent(instanceId, e);
  }

  /**
   * Records blocks `[fromBlock, blocks)` of `keys` as held by an instance in `tier` (for
   * simulators and engines without hash events). Registers the instance if needed.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` on an unknown tier, or a range that is not
   *   `0 ≤ fromBlock ≤ blocks ≤ keys.length / 2` in integers (nothing is stored then).
   */
  recordBlocks(instanceId: string, keys: LocalKeys, tier: Tier = 'gpu', fromBlock = 0, blocks = keys?.length >>> 1): void {
    const t = tierCode('tier', tier);
    requireBlockRange(keys, fromBlock, blocks);
    const inst = this.addInstance(instanceId);
    let guess = -2;
    for (let b = fromBlock; b < blocks; b++) guess = this.store((keys[2 * b] as number) | 0, (keys[2 * b + 1] as number) | 0, inst, t, 0, guess + 1);
  }

  /**
   * Removes blocks `[fromBlock, blocks)` of `keys` held by an instance in `tier`. Keys it does
   * not hold are counted as unknown removals.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` on an unknown tier or a bad range (as
   *   {@link recordBlocks}).
   */
  removeBlocks(instanceId: string, keys: LocalKeys, tier: Tier = 'gpu', fromBlock = 0, blocks = keys?.length >>> 1): void {
    const t = tierCode('tier', tier);
    requireBlockRange(keys, fromBlock, blocks);
    const inst = this.ids.get(instanceId);
    if (inst === undefined) {
      this.stats.unknownInstanceEvents++;
      return;
    }
    for (let b = fromBlock; b < blocks; b++) {
      if (!this.unstore((keys[2 * b] as number) | 0, (keys[2 * b + 1] as number) | 0, inst, t)) this.stats.unknownKeyRemovals++;
    }
  }

  /**
   * @inheritdoc
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a bad range (as {@link recordBlocks}) or an
   *   `expiresAtUs` that is not a finite number (a NaN expiry would never expire).
   */
  addSpeculative(instanceId: string, keys: LocalKeys, fromBlock: number, blocks: number, expiresAtUs: number): void {
    requireBlockRange(keys, fromBlock, blocks);
    if (typeof expiresAtUs !== 'number' || !Number.isFinite(expiresAtUs)) throw invalidArgument('expiresAtUs', expiresAtUs, 'a finite time in µs');
    const inst = this.addInstance(instanceId);
    let guess = -2;
    for (let b = fromBlock; b < blocks; b++) {
      guess = this.store((keys[2 * b] as number) | 0, (keys[2 * b + 1] as number) | 0, inst, SPEC, expiresAtUs, guess + 1);
    }
  }

  /**
   * Drops every block of an instance (all tiers and speculative entries), as on
   * `AllBlocksCleared`; with `tier`, only that tier. Unknown instances are ignored.
   */
  clear(instanceId: string, tier?: Tier): void {
    const inst = this.ids.get(instanceId);
    if (inst === undefined) return;
    this.clearInstance(inst, tier === undefined ? -1 : tierCode('tier', tier));
  }

  /**
   * Holders of one key, live at `nowUs` (expired speculative entries left out), sorted by
   * instance id then tier. For tests and debugging; not a hot path.
   */
  holders(hi: number, lo: number, nowUs = 0): { instanceId: string; tier: HolderTier }[] {
    const e = this.findEntry(hi | 0, lo | 0, -1);
    if (e < 0) return [];
    const base = e * this.stride;
    const hold = this.eHold;
    const res: { instanceId: string; tier: HolderTier }[] = [];
    for (let k = 0; k < (hold[base] as number); k++) {
      const h = hold[base + 1 + k] as number;
      const t = h & 3;
      if (t === SPEC && (this.expiry[e * this.maxInstancesPerKey + k] as number) <= nowUs) continue;
      res.push({ instanceId: this.names[h >>> 2] as string, tier: TIER_NAMES[t] as HolderTier });
    }
    res.sort((x, y) => (x.instanceId < y.instanceId ? -1 : x.instanceId > y.instanceId ? 1 : TIER_NAMES.indexOf(x.tier) - TIER_NAMES.indexOf(y.tier)));
    return res;
  }

  /**
   * Calls `fn` for every confirmed (non-speculative) holding of an instance: key `[hi, lo]` and
   * tier, in entry order. For resynchronising a shared store from this index; O(keys).
   */
  forEachHeld(instanceId: string, fn: (hi: number, lo: number, tier: Tier) => void): void {
    const inst = this.ids.get(instanceId);
    if (inst === undefined) return;
    const hold = this.eHold;
    const stride = this.stride;
    for (let e = 0; e < this.fresh; e++) {
      if (this.eUsed[e] !== 1) continue;
      const base = e * stride;
      for (let k = 0; k < (hold[base] as number); k++) {
        const h = hold[base + 1 + k] as number;
        if (h >>> 2 === inst && (h & 3) !== SPEC) fn(this.eKey[2 * e] as number, this.eKey[2 * e + 1] as number, TIER_NAMES[h & 3] as Tier);
      }
    }
  }

  /** Every key held, as `[hi, lo]` pairs (tests and debugging). */
  keys(): [number, number][] {
    const res: [number, number][] = [];
    for (let e = 0; e < this.fresh; e++) {
      if (this.eUsed[e] === 1) res.push([this.eKey[2 * e] as number, this.eKey[2 * e + 1] as number]);
    }
    return res;
  }

  /**
   * Consecutive blocks of `keys` (from the first) that one instance holds in any tier, counting
   * speculative entries live at `nowUs`. Unknown instances hold nothing.
   *
   * @param instanceId - the instance.
   * @param keys - local keys of the request.
   * @param nowUs - current time, µs. @default 0
   * @returns matched blocks, 0..keys.length / 2.
   */
  prefixLength(instanceId: string, keys: LocalKeys, nowUs = 0): number {
    const inst = this.ids.get(instanceId);
    if (inst === undefined) return 0;
    const hold = this.eHold;
    const stride = this.stride;
    const per = this.maxInstancesPerKey;
    const blocks = keys.length >>> 1;
    let e = -1;
    for (let b = 0; b < blocks; b++) {
      e = this.findEntry((keys[2 * b] as number) | 0, (keys[2 * b + 1] as number) | 0, e + 1);
      if (e < 0) return b;
      const base = e * stride;
      let held = false;
      for (let k = 0; k < (hold[base] as number); k++) {
        const h = hold[base + 1 + k] as number;
        if (h >>> 2 !== inst) continue;
        if ((h & 3) === SPEC && (this.expiry[e * per + k] as number) <= nowUs) continue;
        held = true;
        break;
      }
      if (!held) return b;
    }
    return blocks;
  }

  /**
   * @inheritdoc
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when `blocks` is not an integer in
   *   `[0, keys.length / 2]`, `nowUs` is NaN, or `out`'s arrays are shorter than
   *   {@link maxInstances} (see {@link createPrefixMatch}); `out` is untouched then.
   */
  matchPrefix(keys: LocalKeys, blocks: number, nowUs: number, out: PrefixMatch): void {
    requireBlockRange(keys, 0, blocks);
    if (typeof nowUs !== 'number' || Number.isNaN(nowUs)) throw invalidArgument('nowUs', nowUs, 'a time in µs');
    if (out === null || typeof out !== 'object' || !(out.matchedBlocks?.length >= this.maxInstances) || !(out.weightedBlocks?.length >= this.maxInstances)) {
      throw invalidArgument('out', out, `a PrefixMatch with at least maxInstances (${this.maxInstances}) slots (createPrefixMatch(index.maxInstances))`);
    }
    const matched = out.matchedBlocks;
    const weighted = out.weightedBlocks;
    matched.fill(0);
    weighted.fill(0);
    out.totalBlocks = blocks;
    const hold = this.eHold;
    const stride = this.stride;
    const tierW = this.tierW;
    const lastW = this.lastW;
    const expiry = this.expiry;
    const per = this.maxInstancesPerKey;
    let e = -1;
    for (let b = 0; b < blocks; b++) {
      e = this.findEntry((keys[2 * b] as number) | 0, (keys[2 * b + 1] as number) | 0, e + 1);
      if (e < 0) return;
      const base = e * stride;
      const cnt = hold[base] as number;
      let advanced = false;
      for (let k = 0; k < cnt; k++) {
        const h = hold[base + 1 + k] as number;
        const t = h & 3;
        if (t === SPEC && (expiry[e * per + k] as number) <= nowUs) continue;
        const inst = h >>> 2;
        const m = matched[inst] as number;
        const w = tierW[t] as number;
        if (m === b) {
          matched[inst] = b + 1;
          weighted[inst] = (weighted[inst] as number) + w;
          lastW[inst] = w;
          advanced = true;
        } else if (m === b + 1 && w > (lastW[inst] as number)) {
          weighted[inst] = (weighted[inst] as number) + w - (lastW[inst] as number);
          lastW[inst] = w;
        }
      }
      if (!advanced) return;
    }
  }

  // ---- internals -------------------------------------------------------------------------

  private root(lora: string | undefined): LocalKeys {
    const key = lora ?? '';
    let r = this.rootCache.get(key);
    if (r === undefined) {
      r = namespaceRoot(lora === undefined ? this.ns : { ...this.ns, lora });
      this.rootCache.set(key, r);
    }
    return r;
  }

  private home(hi: number, lo: number): number {
    return Math.imul(lo ^ Math.imul(hi, 0x85ebca6b), 0x9e3779b1) >>> this.shift;
  }

  /**
   * Entry of a key, or -1. Tries `guess` (the entry after the previous block's) first.
   * `hi`, `lo`: the key's halves, as int32 or u32 (compared by their 32 bits).
   */
  private findEntry(hi: number, lo: number, guess: number): number {
    hi |= 0;
    lo |= 0;
    if (guess >= 0 && guess < this.fresh && this.eUsed[guess] === 1 && this.eKeyI[2 * guess + 1] === lo && this.eKeyI[2 * guess] === hi) {
      return guess;
    }
    const tab = this.tabI;
    const mask = this.mask;
    let s = this.home(hi, lo);
    for (;;) {
      const b = s * 4;
      const e1 = tab[b + 2] as number;
      if (e1 === 0) return -1;
      if (tab[b + 1] === lo && tab[b] === hi) return e1 - 1;
      s = (s + 1) & mask;
    }
  }

  /** Adds a holder; returns the key's entry (for the caller's next guess). */
  private store(hi: number, lo: number, inst: number, tier: number, expiresAtUs: number, guess: number): number {
    let entry = this.findEntry(hi, lo, guess);
    if (entry < 0) entry = this.insertKey(hi, lo);
    else this.touch(entry);
    const hold = this.eHold;
    const base = entry * this.stride;
    const per = this.maxInstancesPerKey;
    const holder = (inst << 2) | tier;
    let cnt = hold[base] as number;
    for (let k = 0; k < cnt; k++) {
      if (hold[base + 1 + k] === holder) {
        if (tier === SPEC) this.expiry[entry * per + k] = expiresAtUs;
        return entry;
      }
    }
    if (tier !== SPEC) {
      // a confirmed copy replaces the speculative one of the same instance
      const spec = (inst << 2) | SPEC;
      for (let k = 0; k < cnt; k++) {
        if (hold[base + 1 + k] === spec) {
          this.removeHolderAt(entry, k);
          cnt--;
          break;
        }
      }
    } else {
      // a live confirmed copy makes a speculative entry pointless
      for (let k = 0; k < cnt; k++) if ((hold[base + 1 + k] as number) >>> 2 === inst) return entry;
    }
    if (cnt === per) {
      // full: drop the oldest speculative holder first; a speculative entry never pushes out a
      // confirmed copy
      let victim = -1;
      for (let k = 0; k < cnt; k++) {
        if (((hold[base + 1 + k] as number) & 3) === SPEC) {
          victim = k;
          break;
        }
      }
      if (victim < 0) {
        if (tier === SPEC) return entry;
        victim = 0;
      }
      this.removeHolderAt(entry, victim);
      this.stats.holdersEvicted++;
      cnt--;
    }
    hold[base + 1 + cnt] = holder;
    this.expiry[entry * per + cnt] = tier === SPEC ? expiresAtUs : 0;
    hold[base] = cnt + 1;
    return entry;
  }

  private unstore(hi: number, lo: number, inst: number, tier: number): boolean {
    const entry = this.findEntry(hi, lo, -1);
    if (entry < 0) return false;
    const hold = this.eHold;
    const base = entry * this.stride;
    const holder = (inst << 2) | tier;
    const cnt = hold[base] as number;
    for (let k = 0; k < cnt; k++) {
      if (hold[base + 1 + k] === holder) {
        this.removeHolderAt(entry, k);
        if (cnt === 1) this.deleteEntry(entry);
        return true;
      }
    }
    return false;
  }

  private removeHolderAt(entry: number, k: number): void {
    const hold = this.eHold;
    const base = entry * this.stride;
    const cnt = hold[base] as number;
    const per = this.maxInstancesPerKey;
    for (let j = k + 1; j < cnt; j++) {
      hold[base + j] = hold[base + 1 + j] as number;
      this.expiry[entry * per + j - 1] = this.expiry[entry * per + j] as number;
    }
    hold[base] = cnt - 1;
  }

  private clearInstance(inst: number, tier: number): void {
    const emap = this.engineMaps[inst];
    if (emap !== undefined) {
      if (tier < 0) emap.clear();
      else {
        for (const [h, e] of emap) {
          e.tiers &= ~(1 << tier);
          if (e.tiers === 0) emap.delete(h);
        }
      }
    }
    const hold = this.eHold;
    const stride = this.stride;
    for (let e = 0; e < this.fresh; e++) {
      if (this.eUsed[e] !== 1) continue;
      const base = e * stride;
      for (let k = (hold[base] as number) - 1; k >= 0; k--) {
        const h = hold[base + 1 + k] as number;
        if (h >>> 2 === inst && (tier < 0 || (h & 3) === tier)) this.removeHolderAt(e, k);
      }
      if (hold[base] === 0) this.deleteEntry(e);
    }
  }

  private touch(entry: number): void {
    if (this.head === entry) return;
    const p = this.prev[entry] as number;
    const n = this.next[entry] as number;
    if (p >= 0) this.next[p] = n;
    if (n >= 0) this.prev[n] = p;
    if (this.tail === entry) this.tail = p;
    this.prev[entry] = -1;
    this.next[entry] = this.head;
    if (this.head >= 0) this.prev[this.head] = entry;
    this.head = entry;
    if (this.tail < 0) this.tail = entry;
  }

  private insertKey(hi: number, lo: number): number {
    if (this.count === this.maxKeys) {
      this.deleteEntry(this.tail);
      this.stats.keysEvicted++;
    }
    const entry = this.freeTop > 0 ? (this.freeEntries[--this.freeTop] as number) : this.fresh++;
    const tab = this.tab;
    let s = this.home(hi, lo);
    while (tab[s * 4 + 2] !== 0) s = (s + 1) & this.mask;
    tab[s * 4] = hi;
    tab[s * 4 + 1] = lo;
    tab[s * 4 + 2] = entry + 1;
    this.slotOf[entry] = s;
    this.eKey[2 * entry] = hi;
    this.eKey[2 * entry + 1] = lo;
    this.eHold[entry * this.stride] = 0;
    this.eUsed[entry] = 1;
    this.prev[entry] = -1;
    this.next[entry] = this.head;
    if (this.head >= 0) this.prev[this.head] = entry;
    this.head = entry;
    if (this.tail < 0) this.tail = entry;
    this.count++;
    return entry;
  }

  private deleteEntry(entry: number): void {
    const tab = this.tab;
    const mask = this.mask;
    const p = this.prev[entry] as number;
    const n = this.next[entry] as number;
    if (p >= 0) this.next[p] = n;
    else this.head = n;
    if (n >= 0) this.prev[n] = p;
    else this.tail = p;
    this.eUsed[entry] = 0;
    this.eHold[entry * this.stride] = 0;
    this.freeEntries[this.freeTop++] = entry;
    this.count--;
    // backward-shift deletion keeps probe chains intact without tombstones
    let i = this.slotOf[entry] as number;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const bj = j * 4;
      if (tab[bj + 2] === 0) break;
      const k = this.home(tab[bj] as number, tab[bj + 1] as number);
      const movable = i <= j ? k <= i || k > j : k <= i && k > j;
      if (movable) {
        tab[i * 4] = tab[bj] as number;
        tab[i * 4 + 1] = tab[bj + 1] as number;
        tab[i * 4 + 2] = tab[bj + 2] as number;
        this.slotOf[(tab[bj + 2] as number) - 1] = i;
        i = j;
      }
    }
    tab[i * 4] = 0;
    tab[i * 4 + 1] = 0;
    tab[i * 4 + 2] = 0;
  }
}
