/**
 * An adaptive policy that learns online which expert policy to follow, from miniature
 * simulations of every expert on a spatially sampled subset of the keys.
 */
import { type EvictionEntryInfo, type EvictionPolicy, KvmgrError, invalidArgument, requireInRange, requireOneOf, requirePositiveInt } from '@kvmgr/core';
import { ArcPolicy } from './arc.js';
import { GdsfPolicy } from './gdsf.js';
import { LfuPolicy } from './lfu.js';
import { LruPolicy } from './lru.js';
import { PredictivePolicy, type PredictiveEntryInfo } from './predictive.js';
import { S3FifoPolicy } from './s3fifo.js';
import { SievePolicy } from './sieve.js';
import { type SlotTable, requireKey } from './slot-table.js';

/** Policies {@link AdaptivePolicy} can follow. */
export const ADAPTIVE_EXPERT_NAMES = ['lru', 'lfu', 'arc', 'gdsf', 's3fifo', 'sieve', 'predictive'] as const;
/** An expert of {@link AdaptivePolicy}. */
export type AdaptiveExpertName = (typeof ADAPTIVE_EXPERT_NAMES)[number];

/** Options of {@link AdaptivePolicy}. */
export interface AdaptiveOptions {
  /** Cache size in keys (what the owner evicts down to); sizes the experts' simulations. Required. */
  readonly capacity: number;
  /** Experts, in order of preference on ties. @default ['lru', 'lfu', 'arc', 'gdsf', 's3fifo', 'predictive'] */
  readonly experts?: readonly string[];
  /** Expert followed until the simulations say otherwise. @default 'predictive' when among the experts, else the first */
  readonly initialExpert?: string;
  /**
   * Capacity at or below which the simulations are exact: full-size copies of the experts,
   * the followed one being the cache itself, so that a switch hands over a warm expert.
   * @default 4096
   */
  readonly exactCapacity?: number;
  /**
   * Above `exactCapacity`: keys each miniature simulation holds. The sampling rate is
   * `sampledKeys / capacity`, and each simulated cache holds `capacity × rate` keys (and, for
   * predictive, a history scaled by the rate). Per operation the simulations cost in proportion
   * to the rate. @default 1024
   */
  readonly sampledKeys?: number;
  /**
   * Half-life of the experts' hit scores, in sampled accesses per simulated key (the score
   * of a hit halves after `halfLife × simulated capacity` further sampled accesses, but never
   * sooner than 16,384). @default 8
   */
  readonly halfLife?: number;
  /**
   * Relative lead an expert needs over the followed one before the policy switches.
   * @default 0 when the simulations are exact (a switch hands over a warm expert), 0.05 when
   *   sampled (a switch starts a full-size expert cold)
   */
  readonly margin?: number;
  /**
   * Sampled accesses before the first switch: a learned expert (predictive) starts cold, and
   * the first lead is noise. @default 4096 when exact, max(16384, 16 × simulated capacity) when sampled
   */
  readonly warmup?: number;
  /** Sampled accesses between two comparisons of the experts' scores. @default 512 */
  readonly evaluateEvery?: number;
  /**
   * Standard errors the lead must exceed as well. The lead is compared with
   * `confidence · sqrt(V)`, where V sums, over prompts (over accesses when they carry no
   * `depth`), the squared difference of the two experts' hits in it, with the scores' decay: a
   * paired, cluster-robust variance (McNemar's test when every prompt is one access). @default 3
   */
  readonly confidence?: number;
  /** Slots the followed expert allocates up front. @default min(capacity * 2, 65536) */
  readonly initialCapacity?: number;
}

/** Golden-ratio multiplier: sampling must not correlate with the slot table's own hash. */
const SAMPLE_MUL = 0x9e3779b1;
/** The fast scores' half-life is the slow one's divided by this: a phase change shows there first. */
const FAST_HALF_LIFES = 8;

/** Evicted keys a full-size `predictive` remembers (its `historySize` default). */
const PREDICTIVE_HISTORY = 16384;

/** An expert as a simulation: every expert class has `simulateBatch` (see {@link LruPolicy.simulateBatch}). */
type SimulatedPolicy = EvictionPolicy & {
  simulateBatch(keys: Uint32Array, infos: readonly (EvictionEntryInfo | undefined)[], hits: Uint8Array, n: number, capacity: number, bit: number): void;
};

/** Flags of a recorded event: a prompt starts (depth 0); a sampled access; the access has a depth. */
const START = 1;
const ACCESS = 2;
const DEPTH = 4;
/** Events recorded before the simulations apply them (at the latest). */
const BATCH = 1024;

/** What the simulations read of an access's info, copied: the owner may reuse its info object. */
interface SimInfo {
  nowUs: number | undefined;
  size: number | undefined;
  cost: number | undefined;
  reuseProbability: number | undefined;
  nextAccessUs: number | undefined;
  tenant: string | undefined;
  depth: number | undefined;
  promptBlocks: number | undefined;
  matchedBlocks: number | undefined;
}

/** Accesses recorded for the simulations, in order; the info copies are pooled (no allocation once warm). */
class SimBatch {
  /** Events recorded, and accesses among them. */
  n = 0;
  m = 0;
  readonly flags = new Uint8Array(BATCH);
  readonly keys = new Uint32Array(BATCH);
  /** Per access: bit i set when expert i's simulation held the key. */
  readonly hits = new Uint8Array(BATCH);
  readonly info: (SimInfo | undefined)[] = new Array<SimInfo | undefined>(BATCH).fill(undefined);
  private readonly pool: SimInfo[] = [];

  /** Copies `info` into the pooled object of access `a`; `prompt start`: depth 0. */
  copy(a: number, info: EvictionEntryInfo, promptStart: boolean): SimInfo {
    let o = this.pool[a];
    if (o === undefined) {
      o = { nowUs: undefined, size: undefined, cost: undefined, reuseProbability: undefined, nextAccessUs: undefined, tenant: undefined, depth: undefined, promptBlocks: undefined, matchedBlocks: undefined };
      this.pool[a] = o;
    }
    const p = info as PredictiveEntryInfo;
    o.nowUs = p.nowUs;
    o.size = p.size;
    o.cost = p.cost;
    o.reuseProbability = p.reuseProbability;
    o.nextAccessUs = p.nextAccessUs;
    o.tenant = p.tenant;
    o.depth = promptStart ? 0 : p.depth;
    o.promptBlocks = p.promptBlocks;
    o.matchedBlocks = p.matchedBlocks;
    return o;
  }
}

/** `rate` scales what the expert remembers beyond its capacity (a miniature simulation's history). */
function build(name: AdaptiveExpertName, capacity: number, initialCapacity: number, rate = 1): SimulatedPolicy {
  const init = { initialCapacity };
  switch (name) {
    case 'lru':
      return new LruPolicy(init);
    case 'lfu':
      return new LfuPolicy(init);
    case 'sieve':
      return new SievePolicy(init);
    case 'gdsf':
      return new GdsfPolicy(init);
    case 'predictive':
      return new PredictivePolicy(rate >= 1 ? init : { initialCapacity, historySize: Math.max(64, Math.round(PREDICTIVE_HISTORY * rate)) });
    case 'arc':
      return new ArcPolicy({ capacity, initialCapacity });
    case 's3fifo':
      return new S3FifoPolicy({ capacity, initialCapacity });
  }
}

/** What the policy reports about itself (for tables and tests). */
export interface AdaptiveState {
  /** Expert whose decisions the policy follows now. */
  readonly following: AdaptiveExpertName;
  /** Expert whose keys are still being drained after a switch, or null. */
  readonly draining: AdaptiveExpertName | null;
  /** Switches so far. */
  readonly switches: number;
  /** Sampling rate of the miniature simulations, in (0, 1]. */
  readonly sampleRate: number;
  /** Decayed (prefix) hit score of each expert's simulation, by name. */
  readonly scores: Readonly<Record<string, number>>;
}

/**
 * Adaptive eviction: follow the expert that is doing best on this traffic now.
 *
 * Every expert (LRU, LFU, ARC, GDSF, S3-FIFO, predictive by default) runs as a simulation that
 * counts its hits with prefix semantics when accesses carry `depth` (a block counts only while
 * every earlier simulated block of its prompt also hit), with exponentially decayed weight on
 * two timescales (a half-life of `halfLife × simulated capacity` sampled accesses, and one 8
 * times shorter, where a change of phase shows first).
 *
 * - Exact mode (capacity ≤ `exactCapacity`, 4,096 by default): every simulation is a
 *   full-size copy of its expert seeing every access, and the followed expert's copy is the
 *   cache itself. A switch hands the cache to the new expert's copy with all it has learned:
 *   keys the copy holds that the cache had evicted are dropped from it, keys the cache holds
 *   that the copy had evicted are evicted first (LRU order among them) unless accessed again.
 * - Sampled mode (larger caches): miniature simulations of `sampledKeys` keys (1,024 by
 *   default) see only the keys whose hash falls under the rate `sampledKeys / capacity`; the
 *   followed expert is a separate full-size instance. A switch starts the new expert's instance
 *   empty, and the old instance's keys are evicted first, in its order, unless accessed again.
 *
 * Every 512 sampled accesses (after a warm-up) the policy switches to the expert with the
 * highest score on either timescale when it leads the followed one by more than `margin` plus
 * `confidence` standard errors of the paired difference. The variance is summed by prompt
 * (the experts' hits are strongly correlated, and a prompt's hits come in runs), so a burst of
 * hits in one long prompt does not pass for evidence. That is follow-the-leader with a
 * statistical hysteresis over the experts' recent regret, the online-learning view of LeCaR and
 * CACHEUS, with the experts' states kept as simulations instead of ghost lists.
 *
 * The owner drives eviction as with any policy: `victim()`, drop, `remove(key)`. An insert of a
 * new key when `capacity` keys are resident is refused (as ARC does).
 *
 * The simulations apply the sampled accesses in batches, expert by expert (up to 1,024 recorded
 * accesses and prompt starts, and always before the scores are compared or reported): each
 * expert's state stays in cache through its batch, and every expert still sees the same accesses
 * in the same order (the access's info is copied: the owner may reuse its object), so batching
 * changes no decision and no score.
 *
 * Complexity: per operation, the followed expert's cost plus, for a sampled key (a fraction
 * `rate` of accesses; every key in exact mode), one access in each simulation (O(1) or
 * O(log n) each, amortised over a batch), and O(k) for k experts at the end of a prompt with a
 * hit (O(k²) when their hits in it differ); a switch is O(1) in sampled mode (the old expert is
 * drained lazily by later evictions) and O(capacity) in exact mode. Measured cost per
 * operation, as a ratio to our LRU: `pnpm op-cost` in `packages/eviction` (docs/eviction.md).
 *
 * @see Waldspurger et al., "Cache Modeling and Optimization using Miniature Simulations", USENIX ATC 2017.
 * @see Vietri et al., "Driving Cache Replacement with ML-based LeCaR", HotStorage 2018.
 * @see Rodriguez et al., "Learning Cache Replacement with CACHEUS", FAST 2021.
 */
export class AdaptivePolicy implements EvictionPolicy {
  readonly name: string = 'adaptive';
  /** c: resident capacity in keys. */
  readonly capacity: number;
  private readonly names: AdaptiveExpertName[];
  private readonly sims: SimulatedPolicy[];
  /** Accesses not yet applied to the simulations (applied before any comparison of their scores). */
  private readonly batch = new SimBatch();
  private readonly simCapacity: number;
  /** Keys with `hash(key) < threshold` are sampled (as u32); 2^32 samples every key. */
  private readonly threshold: number;
  private readonly rate: number;
  /**
   * rate = 1: the simulations are full-size copies of the experts and the followed expert's
   * simulation is the cache itself, so a switch hands over a warm expert (see `switchTo`).
   */
  private readonly exact: boolean;
  private readonly scores: Float64Array;
  /** Per expert: 1 once a sampled block of the current prompt missed in its simulation. */
  private readonly broken: Uint8Array;
  /** Per expert: (prefix) hits in its simulation within the current prompt. */
  private readonly promptHits: Float64Array;
  /** Whether some expert hit in the current prompt (else the prompt adds nothing to `disagree`). */
  private promptHit = false;
  /**
   * Per pair of experts (i < j at i·k + j): decayed sum over prompts of the squared difference of
   * their hits in the prompt — the variance of their score difference. The experts' hits are
   * strongly correlated, so it is far smaller than the sum of their scores (with one access per
   * prompt it counts the accesses on which exactly one of the two hit: McNemar's test); and a
   * prompt's hits come in runs, so it is summed by prompt, not by block (a cluster-robust variance).
   */
  private readonly disagree: Float64Array;
  /** Per expert: the current prompt already had a sampled access (depth remapping). */
  private promptSampled = false;
  private readonly decay: number;
  private readonly fastDecay: number;
  private readonly margin: number;
  private readonly z: number;
  /** Sampled accesses before the first switch (the simulations' caches must turn over first). */
  private readonly warmup: number;
  private readonly evaluateEvery: number;
  private readonly initialCapacity: number;
  private readonly initial: number;
  private sampled = 0;
  /** A comparison of the experts is due once the current operation is complete. */
  private due = false;
  private leaderIdx: number;
  private leader: EvictionPolicy;
  private oldIdx = -1;
  /**
   * Keys the cache holds that the followed expert does not, evicted first after a switch: the
   * previous full-size instance (sampled mode), or an LRU list of the keys the new expert's
   * simulation had already evicted (exact mode).
   */
  private old: EvictionPolicy | null = null;
  /** Exact mode: the LRU list `old` points at while draining, reused. */
  private drain: LruPolicy | null = null;
  /** Full-size instances by expert (sampled mode), reused (cleared) when an expert is followed again. */
  private readonly pool: (EvictionPolicy | null)[];
  private switchCount = 0;

  /**
   * @param options - see {@link AdaptiveOptions}.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a non-positive capacity, an unknown or
   *   repeated expert, an initial expert not among them, an `exactCapacity`/`sampledKeys`/`initialCapacity` that
   *   is not a positive integer, a `halfLife` outside [1, 1e6] or a `margin` outside [0, 1].
   */
  constructor(options: AdaptiveOptions) {
    const c = requirePositiveInt('options.capacity', options?.capacity);
    const experts = options.experts ?? ['lru', 'lfu', 'arc', 'gdsf', 's3fifo', 'predictive'];
    if (!Array.isArray(experts) || experts.length === 0) throw invalidArgument('options.experts', experts, `a non-empty list of ${ADAPTIVE_EXPERT_NAMES.join(', ')}`);
    const names = experts.map((e) => requireOneOf('options.experts[]', e, ADAPTIVE_EXPERT_NAMES));
    if (new Set(names).size !== names.length) throw invalidArgument('options.experts', experts, 'distinct expert names');
    const initial = requireOneOf('options.initialExpert', options.initialExpert ?? (names.includes('predictive') ? 'predictive' : names[0]), ADAPTIVE_EXPERT_NAMES);
    const initialIdx = names.indexOf(initial);
    if (initialIdx === -1) throw invalidArgument('options.initialExpert', initial, `one of the experts (${names.join(', ')})`);
    const exactCapacity = requirePositiveInt('options.exactCapacity', options.exactCapacity ?? 4096);
    const sampledKeys = requirePositiveInt('options.sampledKeys', options.sampledKeys ?? 1024);
    const halfLife = requireInRange('options.halfLife', options.halfLife ?? 8, 1, 1e6);
    const exact = c <= exactCapacity || sampledKeys >= c;
    // a switch in exact mode hands over a warm expert: the statistical test alone guards it
    this.margin = requireInRange('options.margin', options.margin ?? (exact ? 0 : 0.05), 0, 1);
    this.z = requireInRange('options.confidence', options.confidence ?? 3, 0, 100);
    this.initialCapacity = options.initialCapacity ?? Math.min(c * 2, 65536);
    this.capacity = c;
    this.names = names;
    this.rate = exact ? 1 : sampledKeys / c;
    this.exact = this.rate >= 1;
    this.threshold = this.exact ? 2 ** 32 : Math.floor(this.rate * 2 ** 32);
    this.simCapacity = this.exact ? c : Math.max(1, Math.round(c * this.rate));
    this.pool = names.map(() => null);
    this.leaderIdx = initialIdx;
    this.initial = initialIdx;
    if (this.exact) {
      // the simulations are the experts at full size; the followed one is the cache
      this.sims = names.map((n) => build(n, c, this.initialCapacity));
      this.leader = this.sims[initialIdx] as EvictionPolicy;
    } else {
      // the followed expert first: it validates initialCapacity before anything else is built
      this.leader = build(initial, c, this.initialCapacity);
      this.pool[initialIdx] = this.leader;
      const simInit = Math.min(this.simCapacity * 2, 65536);
      this.sims = names.map((n) => build(n, this.simCapacity, simInit, this.rate));
    }
    // two timescales: [0, k) decays with the half-life, [k, 2k) FAST_HALF_LIFES times faster
    this.scores = new Float64Array(2 * names.length);
    this.broken = new Uint8Array(names.length);
    this.promptHits = new Float64Array(names.length);
    this.disagree = new Float64Array(2 * names.length * names.length);
    const halfLifeAccesses = Math.max(16384, halfLife * this.simCapacity);
    this.decay = 0.5 ** ((options.evaluateEvery ?? 512) / halfLifeAccesses);
    this.fastDecay = this.decay ** FAST_HALF_LIFES;
    this.warmup = options.warmup === undefined ? (this.exact ? 4096 : Math.max(16384, 16 * this.simCapacity)) : requireInRange('options.warmup', options.warmup, 0, 2 ** 40);
    this.evaluateEvery = requirePositiveInt('options.evaluateEvery', options.evaluateEvery ?? 512);
  }

  get size(): number {
    return this.old === null ? this.leader.size : this.leader.size + this.old.size;
  }

  /** Which expert is followed, the simulations' scores, the sampling rate. */
  state(): AdaptiveState {
    this.flush();
    const scores: Record<string, number> = {};
    this.names.forEach((n, i) => {
      scores[n] = this.scores[i] as number;
    });
    return {
      following: this.names[this.leaderIdx] as AdaptiveExpertName,
      draining: this.oldIdx === -1 ? null : (this.names[this.oldIdx] as AdaptiveExpertName),
      switches: this.switchCount,
      sampleRate: this.rate,
      scores,
    };
  }

  /**
   * Tracks `key` (an access: the simulations see it when it is sampled). A tracked key is
   * touched.
   * @param info - passed to the experts: `depth`/`promptBlocks` (predictive, prefix scoring),
   *   `cost`/`size` (GDSF), `reuseProbability` (predictive).
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a bad key or a bad `info` field (cost < 0,
   *   size ≤ 0, reuse probability outside [0, 1]); `KVMGR_INVALID_STATE` when `capacity` keys are
   *   already resident (evict first). Nothing changes then.
   */
  insert(key: number, info?: EvictionEntryInfo): void {
    requireKey(key);
    checkInfo(info);
    const leader = this.leader;
    if (this.old === null && leader.size < this.capacity) {
      // common case: nothing to drain and room for a new key; the expert's insert touches a tracked key
      if (info !== undefined || this.sampledKey(key)) this.access(key, info);
      leader.insert(key, info);
      if (this.due) this.evaluate();
      return;
    }
    if (leader.has(key)) {
      this.access(key, info);
      leader.touch(key, info);
      if (this.due) this.evaluate();
      return;
    }
    const old = this.old;
    if (old !== null && old.has(key)) {
      this.access(key, info);
      this.adopt(key, info);
      if (this.due) this.evaluate();
      return;
    }
    if (this.size >= this.capacity) {
      throw new KvmgrError('KVMGR_INVALID_STATE', `adaptive: cannot insert key ${key}: ${this.capacity} keys resident (capacity); evict first`, {
        details: { key, capacity: this.capacity },
      });
    }
    this.access(key, info);
    leader.insert(key, info);
    if (this.due) this.evaluate();
  }

  /**
   * An access of a tracked key (no-op for an untracked one).
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a bad `info` field; nothing changes then.
   */
  touch(key: number, info?: EvictionEntryInfo): void {
    checkInfo(info);
    if (this.old === null) {
      // the simulations only need to know about sampled keys (and prompt starts): skip the
      // extra lookup for the rest; touching an untracked key is a no-op for every expert
      const leader = this.leader;
      if ((this.sampledKey(key) || (info as PredictiveEntryInfo | undefined)?.depth === 0) && leader.has(key)) this.access(key, info);
      leader.touch(key, info);
    } else if (this.leader.has(key)) {
      this.access(key, info);
      this.leader.touch(key, info);
    } else if (this.old.has(key)) {
      this.access(key, info);
      this.adopt(key, info);
    }
    if (this.due) this.evaluate();
  }

  /** Moves a key the old expert holds to the followed one (it was accessed again). */
  private adopt(key: number, info: EvictionEntryInfo | undefined): void {
    const old = this.old as EvictionPolicy;
    old.remove(key);
    this.leader.insert(key, info);
    if (old.size === 0) this.dropOld();
  }

  private dropOld(): void {
    // sampled mode: the old full-size instance goes back to the pool, emptied
    (this.old as EvictionPolicy).clear();
    this.old = null;
    this.oldIdx = -1;
  }

  /** Drops a tracked key (from whichever expert holds it). */
  remove(key: number): void {
    if (this.old === null) this.leader.remove(key);
    else if (this.leader.has(key)) this.leader.remove(key);
    else if (this.old !== null && this.old.has(key)) {
      this.old.remove(key);
      if (this.old.size === 0) this.dropOld();
    }
  }

  /** The old expert's victim while it still holds keys after a switch, else the followed expert's. */
  victim(): number {
    return this.old !== null ? this.old.victim() : this.leader.victim();
  }

  has(key: number): boolean {
    return this.leader.has(key) || (this.old !== null && this.old.has(key));
  }

  /** Forgets every key, the simulations and their scores; follows the initial expert again. */
  clear(): void {
    if (this.old !== null) this.dropOld();
    this.leader.clear();
    this.leaderIdx = this.initial;
    if (this.exact) this.leader = this.sims[this.initial] as EvictionPolicy;
    else {
      this.leader = this.pool[this.initial] ?? build(this.names[this.initial] as AdaptiveExpertName, this.capacity, this.initialCapacity);
      this.pool[this.initial] = this.leader;
    }
    this.leader.clear();
    for (const s of this.sims) s.clear();
    this.batch.n = 0;
    this.batch.m = 0;
    this.scores.fill(0);
    this.broken.fill(0);
    this.disagree.fill(0);
    this.promptHits.fill(0);
    this.promptHit = false;
    this.sampled = 0;
    this.due = false;
    this.switchCount = 0;
    this.promptSampled = false;
  }

  /** Whether the simulations see `key` (hash-sampled; every key in exact mode). */
  private sampledKey(key: number): boolean {
    return this.exact || Math.imul(key, SAMPLE_MUL) >>> 0 < this.threshold;
  }

  /**
   * Records one access for the simulations (a prompt start always; the access itself when the
   * key is sampled). The simulations apply recorded accesses in batches (see `flush`): each
   * expert runs a batch alone, with its own state in cache, where one access at a time through
   * six experts would miss the cache in each. In exact mode the followed expert's simulation is
   * the cache: whether it holds the key is recorded here, and the caller applies the access.
   */
  private access(key: number, info: EvictionEntryInfo | undefined): void {
    const depth = (info as PredictiveEntryInfo | undefined)?.depth;
    const start = depth === 0;
    const sampled = this.sampledKey(key);
    if (!start && !sampled) return;
    const b = this.batch;
    const j = b.n;
    b.flags[j] = (start ? START : 0) | (sampled ? ACCESS : 0) | (depth === undefined ? 0 : DEPTH);
    if (start) this.promptSampled = false;
    if (sampled) {
      const a = b.m++;
      b.keys[a] = key;
      b.hits[a] = this.exact ? (this.leader.has(key) ? 1 << this.leaderIdx : 0) : 0;
      // a simulation sees a prompt's sampled blocks only: its first one stands for the prompt's start
      b.info[a] = info === undefined ? undefined : b.copy(a, info, depth !== undefined && depth > 0 && !this.promptSampled && !this.exact);
      this.promptSampled = true;
      // compared after the caller has applied the access: a switch happens between operations
      if (++this.sampled % this.evaluateEvery === 0) this.due = true;
    }
    if (++b.n === b.keys.length) this.flush();
  }

  /**
   * Applies the recorded accesses to the simulations, expert by expert, then scores them in
   * access order, as if each access had gone through every expert at once: every expert sees
   * the same accesses in the same order, so batching changes no decision and no score.
   */
  private flush(): void {
    const b = this.batch;
    const n = b.n;
    const m = b.m;
    if (n === 0) return;
    b.n = 0;
    b.m = 0;
    const sims = this.sims;
    const k = sims.length;
    const cap = this.simCapacity;
    const skip = this.exact ? this.leaderIdx : -1;
    const flags = b.flags;
    const keys = b.keys;
    const hits = b.hits;
    // a copy holds `undefined` where the original lacked the field: the experts read both alike
    const infos = b.info as readonly (EvictionEntryInfo | undefined)[];
    for (let i = 0; i < k; i++) {
      if (i === skip) continue;
      (sims[i] as SimulatedPolicy).simulateBatch(keys, infos, hits, m, cap, 1 << i);
    }
    const broken = this.broken;
    const scores = this.scores;
    const promptHits = this.promptHits;
    let a = 0;
    for (let j = 0; j < n; j++) {
      const f = flags[j] as number;
      if ((f & START) !== 0) {
        broken.fill(0);
        if (this.promptHit) this.closePrompt();
      }
      if ((f & ACCESS) === 0) continue;
      const h = hits[a++] as number;
      const hasDepth = (f & DEPTH) !== 0;
      for (let i = 0; i < k; i++) {
        if ((h & (1 << i)) !== 0) {
          if (broken[i] === 0) {
            scores[i] = (scores[i] as number) + 1;
            scores[k + i] = (scores[k + i] as number) + 1;
            promptHits[i] = (promptHits[i] as number) + 1;
            this.promptHit = true;
          }
        } else if (hasDepth) broken[i] = 1;
      }
      // without prompt structure every access is its own cluster
      if (!hasDepth && this.promptHit) this.closePrompt();
    }
  }

  /** Adds the finished prompt's squared hit differences to `disagree`, per pair of experts. */
  private closePrompt(): void {
    const h = this.promptHits;
    const d = this.disagree;
    const k = h.length;
    // the common case: every expert hit alike, and every squared difference is 0
    let same = true;
    for (let i = 1; i < k && same; i++) same = h[i] === h[0];
    for (let i = 0; i < k && !same; i++) {
      const hi = h[i] as number;
      for (let j = i + 1; j < k; j++) {
        const x = hi - (h[j] as number);
        d[i * k + j] = (d[i * k + j] as number) + x * x;
        d[k * k + i * k + j] = (d[k * k + i * k + j] as number) + x * x;
      }
    }
    h.fill(0);
    this.promptHit = false;
  }

  /**
   * Switches to an expert that leads the followed one clearly on either timescale (the fast one
   * wins a tie), not while still draining; then decays the scores.
   */
  private evaluate(): void {
    this.due = false;
    this.flush();
    const s = this.scores;
    const d = this.disagree;
    const k = this.names.length;
    const lead = this.leaderIdx;
    if (this.old === null && this.sampled >= this.warmup) {
      let pick = -1;
      for (let t = 0; t < 2; t++) {
        const o = t * k;
        let best = lead;
        for (let i = 0; i < k; i++) if ((s[o + i] as number) > (s[o + best] as number)) best = i;
        if (best === lead) continue;
        const sb = s[o + best] as number;
        const sl = s[o + lead] as number;
        const pair = t * k * k + (best < lead ? best * k + lead : lead * k + best);
        // the lead must be relative (margin) and beyond the noise of the paired difference
        if (sb - sl > this.margin * sl + this.z * Math.sqrt(d[pair] as number)) pick = best;
      }
      if (pick !== -1) this.switchTo(pick);
    }
    for (let i = 0; i < k; i++) s[i] = (s[i] as number) * this.decay;
    for (let i = k; i < 2 * k; i++) s[i] = (s[i] as number) * this.fastDecay;
    for (let i = 0; i < k * k; i++) d[i] = (d[i] as number) * this.decay;
    for (let i = k * k; i < 2 * k * k; i++) d[i] = (d[i] as number) * this.fastDecay;
  }

  private switchTo(i: number): void {
    if (this.exact) {
      this.handOver(i);
      return;
    }
    const next = this.pool[i] ?? build(this.names[i] as AdaptiveExpertName, this.capacity, this.initialCapacity);
    next.clear();
    this.pool[i] = next;
    if (this.leader.size > 0) {
      this.old = this.leader;
      this.oldIdx = this.leaderIdx;
    }
    this.leader = next;
    this.leaderIdx = i;
    this.switchCount++;
  }

  /**
   * Exact mode: the new expert's simulation becomes the cache, with everything it has learned.
   * Keys it holds that the cache does not (the old expert had evicted them) are dropped from
   * it; keys the cache holds that it had evicted go to an LRU drain list and are evicted first
   * unless accessed again. O(capacity), once per switch.
   */
  private handOver(i: number): void {
    const cur = this.leader;
    const next = this.sims[i] as EvictionPolicy;
    const nextTable = next as unknown as SlotTable;
    const curTable = cur as unknown as SlotTable;
    for (const k of nextTable.trackedKeys()) if (next.has(k) && !cur.has(k)) next.remove(k);
    const drain = this.drain ?? new LruPolicy({ initialCapacity: Math.min(this.capacity * 2, 65536) });
    this.drain = drain;
    for (const k of curTable.trackedKeys()) if (cur.has(k) && !next.has(k)) drain.insert(k);
    if (drain.size > 0) {
      this.old = drain;
      this.oldIdx = this.leaderIdx;
    }
    this.leader = next;
    this.leaderIdx = i;
    this.switchCount++;
  }
}

/** Validates what any expert would refuse, so that no expert is half-updated by a throw. */
function checkInfo(info: EvictionEntryInfo | undefined): void {
  if (info === undefined) return;
  const { cost, size, reuseProbability: p } = info;
  if (cost !== undefined && !(Number.isFinite(cost) && cost >= 0)) throw invalidArgument('info.cost', cost, 'a finite number >= 0');
  if (size !== undefined && !(Number.isFinite(size) && size > 0)) throw invalidArgument('info.size', size, 'a finite number > 0');
  if (p !== undefined && !(p >= 0 && p <= 1)) throw invalidArgument('reuseProbability', p, 'a number in [0, 1]');
}
