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
import { requireKey } from './slot-table.js';

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
  /** Expert followed until the simulations say otherwise. @default 'lru' */
  readonly initialExpert?: string;
  /**
   * Keys each miniature simulation holds: the sampling rate is `min(1, sampledKeys / capacity)`,
   * and each simulated cache holds `capacity × rate` keys. At or below this capacity the
   * simulations are exact shadow caches. @default 4096
   */
  readonly sampledKeys?: number;
  /**
   * Half-life of the experts' hit scores, in sampled accesses per simulated key (the score
   * of a hit halves after `halfLife × simulated capacity` further sampled accesses, but never
   * sooner than 16,384). @default 8
   */
  readonly halfLife?: number;
  /** Relative lead an expert needs over the followed one before the policy switches. @default 0.05 */
  readonly margin?: number;
  /**
   * Sampled accesses before the first switch: a learned expert (predictive) starts cold, and
   * the first lead is noise. @default max(16384, 16 × simulated capacity)
   */
  readonly warmup?: number;
  /** Sampled accesses between two comparisons of the experts' scores. @default 512 */
  readonly evaluateEvery?: number;
  /**
   * Standard errors the lead must exceed as well: the difference of the decayed hit scores is
   * compared with `confidence · sqrt(sum of both)` (hit counts are roughly Poisson). @default 3
   */
  readonly confidence?: number;
  /** Slots the followed expert allocates up front. @default min(capacity * 2, 65536) */
  readonly initialCapacity?: number;
}

/** Golden-ratio multiplier: sampling must not correlate with the slot table's own hash. */
const SAMPLE_MUL = 0x9e3779b1;

function build(name: AdaptiveExpertName, capacity: number, initialCapacity: number): EvictionPolicy {
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
      return new PredictivePolicy(init);
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
 * Every expert (LRU, LFU, ARC, GDSF, S3-FIFO, predictive by default) runs as a miniature
 * simulation: a cache of `capacity × rate` keys that sees only the keys whose hash falls under
 * the sampling rate (`rate = min(1, sampledKeys / capacity)`: exact shadow caches for small
 * caches, a 4,096-key sample for large ones). Each simulation counts its hits with prefix
 * semantics when accesses carry `depth` (a block counts only while every earlier sampled block
 * of its prompt also hit), with exponentially decayed weight. Every 512 sampled accesses (after a warm-up) the
 * policy compares the scores and, when another expert leads the one it follows by more than
 * `margin`, switches: a fresh full-size instance of the new expert takes over, and the keys
 * still held by the old one are evicted first, in the old expert's order, unless they are
 * accessed again (then they move to the new expert). That is follow-the-leader with
 * hysteresis over the experts' recent regret, the online-learning view of LeCaR and CACHEUS,
 * with the experts' states kept as sampled simulations instead of ghost lists so that the cost
 * does not grow with their number.
 *
 * The owner drives eviction as with any policy: `victim()`, drop, `remove(key)`. An insert of a
 * new key when `capacity` keys are resident is refused (as ARC does).
 *
 * Complexity: per operation, the followed expert's cost plus, for a sampled key (a fraction
 * `rate` of accesses), one access in each simulation (O(1) or O(log n) each); a switch is O(1)
 * (the old expert is drained lazily by later evictions).
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
  private readonly sims: EvictionPolicy[];
  private readonly simCapacity: number;
  /** Keys with `hash(key) < threshold` are sampled (as u32); 2^32 samples every key. */
  private readonly threshold: number;
  private readonly rate: number;
  private readonly scores: Float64Array;
  /** Per expert: 1 once a sampled block of the current prompt missed in its simulation. */
  private readonly broken: Uint8Array;
  /** Per expert: the current prompt already had a sampled access (depth remapping). */
  private promptSampled = false;
  private readonly decay: number;
  private readonly margin: number;
  private readonly z: number;
  /** Sampled accesses before the first switch (the simulations' caches must turn over first). */
  private readonly warmup: number;
  private readonly evaluateEvery: number;
  private readonly initialCapacity: number;
  private readonly initial: number;
  private sampled = 0;
  private leaderIdx: number;
  private leader: EvictionPolicy;
  private oldIdx = -1;
  private old: EvictionPolicy | null = null;
  /** Full-size instances by expert, reused (cleared) when an expert is followed again. */
  private readonly pool: (EvictionPolicy | null)[];
  private switchCount = 0;

  /**
   * @param options - see {@link AdaptiveOptions}.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a non-positive capacity, an unknown or
   *   repeated expert, an initial expert not among them, a `sampledKeys`/`initialCapacity` that
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
    const sampledKeys = requirePositiveInt('options.sampledKeys', options.sampledKeys ?? 4096);
    const halfLife = requireInRange('options.halfLife', options.halfLife ?? 8, 1, 1e6);
    this.margin = requireInRange('options.margin', options.margin ?? 0.05, 0, 1);
    this.z = requireInRange('options.confidence', options.confidence ?? 3, 0, 100);
    this.initialCapacity = options.initialCapacity ?? Math.min(c * 2, 65536);
    this.capacity = c;
    this.names = names;
    this.rate = Math.min(1, sampledKeys / c);
    this.threshold = this.rate >= 1 ? 2 ** 32 : Math.floor(this.rate * 2 ** 32);
    this.simCapacity = Math.max(1, Math.round(c * this.rate));
    const simInit = Math.min(this.simCapacity * 2, 65536);
    // the followed expert first: it validates initialCapacity before anything else is built
    this.pool = names.map(() => null);
    this.leaderIdx = initialIdx;
    this.initial = initialIdx;
    this.leader = build(initial, c, this.initialCapacity);
    this.pool[initialIdx] = this.leader;
    this.sims = names.map((n) => build(n, this.simCapacity, simInit));
    this.scores = new Float64Array(names.length);
    this.broken = new Uint8Array(names.length);
    const halfLifeAccesses = Math.max(16384, halfLife * this.simCapacity);
    this.decay = 0.5 ** ((options.evaluateEvery ?? 512) / halfLifeAccesses);
    this.warmup = options.warmup === undefined ? Math.max(16384, 16 * this.simCapacity) : requireInRange('options.warmup', options.warmup, 0, 2 ** 40);
    this.evaluateEvery = requirePositiveInt('options.evaluateEvery', options.evaluateEvery ?? 512);
  }

  get size(): number {
    return this.old === null ? this.leader.size : this.leader.size + this.old.size;
  }

  /** Which expert is followed, the simulations' scores, the sampling rate. */
  state(): AdaptiveState {
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
    if (this.leader.has(key)) {
      this.access(key, info);
      this.leader.touch(key, info);
      return;
    }
    const old = this.old;
    if (old !== null && old.has(key)) {
      this.access(key, info);
      this.adopt(key, info);
      return;
    }
    if (this.size >= this.capacity) {
      throw new KvmgrError('KVMGR_INVALID_STATE', `adaptive: cannot insert key ${key}: ${this.capacity} keys resident (capacity); evict first`, {
        details: { key, capacity: this.capacity },
      });
    }
    this.access(key, info);
    this.leader.insert(key, info);
  }

  /**
   * An access of a tracked key (no-op for an untracked one).
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a bad `info` field; nothing changes then.
   */
  touch(key: number, info?: EvictionEntryInfo): void {
    checkInfo(info);
    if (this.leader.has(key)) {
      this.access(key, info);
      this.leader.touch(key, info);
    } else if (this.old !== null && this.old.has(key)) {
      this.access(key, info);
      this.adopt(key, info);
    }
  }

  /** Moves a key the old expert holds to the followed one (it was accessed again). */
  private adopt(key: number, info: EvictionEntryInfo | undefined): void {
    const old = this.old as EvictionPolicy;
    old.remove(key);
    this.leader.insert(key, info);
    if (old.size === 0) this.dropOld();
  }

  private dropOld(): void {
    (this.old as EvictionPolicy).clear();
    this.old = null;
    this.oldIdx = -1;
  }

  /** Drops a tracked key (from whichever expert holds it). */
  remove(key: number): void {
    if (this.leader.has(key)) this.leader.remove(key);
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
    this.leader = this.pool[this.initial] ?? build(this.names[this.initial] as AdaptiveExpertName, this.capacity, this.initialCapacity);
    this.pool[this.initial] = this.leader;
    this.leader.clear();
    for (const s of this.sims) s.clear();
    this.scores.fill(0);
    this.broken.fill(0);
    this.sampled = 0;
    this.switchCount = 0;
    this.promptSampled = false;
  }

  /** Feeds one access to the simulations when the key is sampled. */
  private access(key: number, info: EvictionEntryInfo | undefined): void {
    const depth = (info as PredictiveEntryInfo | undefined)?.depth;
    if (depth === 0) {
      this.broken.fill(0);
      this.promptSampled = false;
    }
    if (this.threshold < 2 ** 32 && Math.imul(key, SAMPLE_MUL) >>> 0 >= this.threshold) return;
    // a simulation sees a prompt's sampled blocks only: its first one stands for the prompt's start
    let simInfo = info;
    if (depth !== undefined && depth > 0 && !this.promptSampled && this.threshold < 2 ** 32) simInfo = { ...info, depth: 0 } as PredictiveEntryInfo;
    this.promptSampled = true;
    const sims = this.sims;
    const cap = this.simCapacity;
    for (let i = 0; i < sims.length; i++) {
      const sim = sims[i] as EvictionPolicy;
      if (sim.has(key)) {
        if (this.broken[i] === 0) this.scores[i] = (this.scores[i] as number) + 1;
        sim.touch(key, simInfo);
      } else {
        if (depth !== undefined) this.broken[i] = 1;
        while (sim.size >= cap) sim.remove(sim.victim());
        sim.insert(key, simInfo);
      }
    }
    if (++this.sampled % this.evaluateEvery === 0) this.evaluate();
  }

  /** Decays the scores and switches to a clearly better expert (not while still draining). */
  private evaluate(): void {
    const s = this.scores;
    let best = this.leaderIdx;
    for (let i = 0; i < s.length; i++) if ((s[i] as number) > (s[best] as number)) best = i;
    const sb = s[best] as number;
    const sl = s[this.leaderIdx] as number;
    // the lead must be relative (margin) and beyond the noise of hit counts (z standard errors)
    if (best !== this.leaderIdx && this.old === null && this.sampled >= this.warmup && sb - sl > this.margin * sl + this.z * Math.sqrt(sb + sl)) {
      this.switchTo(best);
    }
    for (let i = 0; i < s.length; i++) s[i] = (s[i] as number) * this.decay;
  }

  private switchTo(i: number): void {
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
}

/** Validates what any expert would refuse, so that no expert is half-updated by a throw. */
function checkInfo(info: EvictionEntryInfo | undefined): void {
  if (info === undefined) return;
  const { cost, size, reuseProbability: p } = info;
  if (cost !== undefined && !(Number.isFinite(cost) && cost >= 0)) throw invalidArgument('info.cost', cost, 'a finite number >= 0');
  if (size !== undefined && !(Number.isFinite(size) && size > 0)) throw invalidArgument('info.size', size, 'a finite number > 0');
  if (p !== undefined && !(p >= 0 && p <= 1)) throw invalidArgument('reuseProbability', p, 'a number in [0, 1]');
}
