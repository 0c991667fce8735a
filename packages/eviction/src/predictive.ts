/**
 * A predictive policy that learns, online, how likely each kind of entry is to be reused and
 * how soon, and evicts the entry with the lowest expected reuse rate.
 */
import { type EvictionEntryInfo, type EvictionPolicy, invalidArgument, requirePositiveInt } from '@kvmgr/core';
import { SlotTable, requireKey } from './slot-table.js';

/**
 * Extra facts a prefix cache knows about a block access. All optional; the policy uses the
 * ones present. {@link BlockAccessInfo} (from the replay harness) is one.
 */
export interface PredictiveEntryInfo extends EvictionEntryInfo {
  /** 0-based position of the block in its prompt. */
  readonly depth?: number;
  /** Blocks in the prompt. */
  readonly promptBlocks?: number;
  /** Leading blocks of the prompt that were cached at lookup. */
  readonly matchedBlocks?: number;
}

/** Options of {@link PredictivePolicy}. */
export interface PredictiveOptions {
  /** Evicted keys remembered (with their class and last access) to learn reuse gaps. @default 16384 */
  readonly historySize?: number;
  /** Learned score table refresh period, in observations (reuses + expiries). @default 256 */
  readonly refreshEvery?: number;
  /**
   * An external reuse signal: probability in [0, 1] that `key` is reused soon, or `undefined`
   * when it has nothing to say about this access. When it gives one (or when an access carries
   * `info.reuseProbability`, which takes precedence) it becomes one of the class features.
   * @default undefined
   */
  readonly predictReuse?: (key: number, info: PredictiveEntryInfo | undefined) => number | undefined;
  /**
   * How a reuse probability (from `predictReuse` or `info.reuseProbability`) enters the class:
   * `replace` — it alone picks one of 8 classes (the built-in features are ignored for that
   * access); `combine` — it splits each of the 48 feature classes into 4 by the probability
   * ([0, 0.25), [0.25, 0.5), [0.5, 0.75), [0.75, 1]), and accesses without one go to a fifth,
   * "no signal" split. `combine` keeps what the built-in features know (hot shared blocks,
   * turns, last blocks) and adds the signal on top; the victim scan then covers 240 classes.
   * @default 'replace'
   */
  readonly signal?: 'replace' | 'combine';
  /**
   * What ages and reuse gaps are measured in: `accesses` (insert/touch calls) or `time`
   * (milliseconds from `info.nowUs`; accesses without it keep the last time).
   * @default 'accesses'
   */
  readonly timeBase?: 'accesses' | 'time';
  /** Slots allocated up front. @default 1024 */
  readonly initialCapacity?: number;
}

const FEATURE_CLASSES = 48;
const PROB_CLASSES = 8;
/** Splits of each feature class in `combine` mode: 4 probability quarters and "no signal". */
const SPLITS = 5;
const NO_SIGNAL = SPLITS - 1;
const BINS = 40;

function binOf(gap: number): number {
  // log2 bins of the gap: bin 0 = [0, 1), bin b ≥ 1 = [2^(b-1), 2^b)
  if (gap < 1) return 0;
  const b = gap < 4294967296 ? 32 - Math.clz32(gap) : 33 + Math.floor(Math.log2(gap / 4294967296));
  return b < BINS ? b : BINS - 1;
}

/** Lower edge of each bin (and one past the last), precomputed: refresh reads it per bin. */
const BIN_LOW = new Float64Array(BINS + 2);
for (let b = 1; b < BIN_LOW.length; b++) BIN_LOW[b] = 2 ** (b - 1);

function binLow(b: number): number {
  return BIN_LOW[b] as number;
}

/**
 * Predictive eviction. Each access puts the key in one of 48 feature classes built from what
 * the owner knows — the key's own access count in log2 buckets (0, 1, 2–3, …, 64+; counts
 * survive eviction through the history of evicted keys), the conversation turn of its prompt
 * (0, 1, 2+: the most accesses any block past the root had before), and whether it is the
 * last, partial block of its prompt — or, when a reuse probability is given, in one of 8
 * classes of it (option `signal: 'replace'`), or in one of 4 quarters of it within its feature
 * class (`signal: 'combine'`). Keys of a class sit on an LRU list; blocks of one prompt share its start time
 * and are queued deepest-first so a prompt's suffix is evicted before its prefix. For every
 * class the policy learns online, from the accesses it sees (never the future), the histogram
 * of reuse gaps (log2 bins, in accesses or ms) and how many keys left the history unused; from
 * those it derives, per class and age, the probability P of a further reuse and the expected
 * time E until it. The victim is the class tail with the smallest P / E — the entry expected
 * to earn the fewest hits per unit of cache time, a learned stand-in for Belady's
 * farthest-next-use rule.
 *
 * Related work: LeCaR/CACHEUS-style learning, Hawkeye/Glider (learning from Belady in
 * hardware caches), and LRB (Song et al., "Learning Relaxed Belady for CDN Caching", NSDI
 * 2020), which likewise predicts next-access distance from access-history features.
 *
 * Complexity: O(1) per insert/touch/remove; victim O(classes) = O(56) (O(240) with
 * `signal: 'combine'`); a table refresh costs
 * O(classes × bins) every `refreshEvery` observations.
 *
 * @see https://www.usenix.org/conference/nsdi20/presentation/song
 */
export class PredictivePolicy extends SlotTable implements EvictionPolicy {
  readonly name: string = 'predictive';
  private cls: Uint8Array;
  private count: Uint32Array;
  private last: Float64Array;
  private clock = 0;
  /** Time of the current access: ms from `info.nowUs` when the time base is `time`, else the access count. */
  private now = 0;
  private readonly useTime: boolean;
  private readonly historySize: number;
  private readonly refreshEvery: number;
  private readonly predictReuse: ((key: number, info: PredictiveEntryInfo | undefined) => number | undefined) | undefined;
  private readonly combine: boolean;
  /** Number of classes: 48 + 8 (`replace`) or 48 × 5 (`combine`); the history list id is this. */
  private readonly classes: number;
  private readonly gaps: Float64Array;
  private readonly never: Float64Array;
  private readonly score: Float64Array;
  private observations = 0;
  /** Per class: 1 when its gaps or expiries changed since the last refresh (only those are recomputed). */
  private readonly dirty: Uint8Array;
  /** Clock at the start of the current prompt (depth 0), and per class the last slot placed. */
  private groupStart = 0;
  /** Most accesses any block (past the root) of the current prompt had before: its conversation turn. */
  private groupTurn = 0;

  private readonly cursor: Int32Array;
  /** Per class: the prompt generation its cursor belongs to (a stale cursor reads as none). */
  private readonly cursorGen: Uint32Array;
  /** Prompt generation: bumped at each prompt start instead of clearing every cursor. */
  private gen = 1;
  /**
   * Bit per class, set when a key joins the class: the victim scan visits set bits only (a
   * class that emptied is cleared when the scan meets it), not all 56 or 240 classes.
   */
  private readonly occupied: Uint32Array;

  /**
   * @param options - see {@link PredictiveOptions}.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a non-positive `historySize`/`refreshEvery`
   *   or a `signal` other than `replace`/`combine`.
   */
  constructor(options: PredictiveOptions = {}) {
    const historySize = requirePositiveInt('options.historySize', options.historySize ?? 16384);
    const refreshEvery = requirePositiveInt('options.refreshEvery', options.refreshEvery ?? 256);
    const signal = options.signal ?? 'replace';
    if (signal !== 'replace' && signal !== 'combine') throw invalidArgument('options.signal', signal, "'replace' or 'combine'");
    const classes = signal === 'combine' ? FEATURE_CLASSES * SPLITS : FEATURE_CLASSES + PROB_CLASSES;
    super(classes + 1, options.initialCapacity ?? 1024);
    this.classes = classes;
    this.combine = signal === 'combine';
    this.gaps = new Float64Array(classes * BINS);
    this.never = new Float64Array(classes);
    this.score = new Float64Array(classes * BINS);
    this.cursor = new Int32Array(classes).fill(-1);
    this.cursorGen = new Uint32Array(classes);
    this.occupied = new Uint32Array((classes + 31) >>> 5);
    this.dirty = new Uint8Array(classes).fill(1);
    this.historySize = historySize;
    this.refreshEvery = refreshEvery;
    this.predictReuse = options.predictReuse;
    this.useTime = (options.timeBase ?? 'accesses') === 'time';
    this.cls = new Uint8Array(this.cap);
    this.count = new Uint32Array(this.cap);
    this.last = new Float64Array(this.cap);
    this.refresh();
  }

  protected override onGrow(newCap: number): void {
    const c = new Uint8Array(newCap);
    c.set(this.cls);
    this.cls = c;
    const n = new Uint32Array(newCap);
    n.set(this.count);
    this.count = n;
    const l = new Float64Array(newCap);
    l.set(this.last);
    this.last = l;
  }

  get size(): number {
    return this.used - (this.lens[this.classes] as number);
  }

  private classOf(key: number, info: PredictiveEntryInfo | undefined, priorAccesses: number): number {
    let p = info?.reuseProbability;
    if (p === undefined && this.predictReuse !== undefined) p = this.predictReuse(key, info);
    if (p !== undefined && !(p >= 0 && p <= 1)) throw invalidArgument('reuseProbability', p, 'a number in [0, 1]');
    if (p !== undefined && !this.combine) return FEATURE_CLASSES + Math.min(PROB_CLASSES - 1, Math.floor(p * PROB_CLASSES));
    let c = 0;
    let turn = 0;
    if (info !== undefined) {
      const { depth, promptBlocks } = info;
      if (depth !== undefined) {
        // a prompt is one conversation turn: its blocks past the root share the turn number
        // (the most accesses any of them had before; a block remembered in the history counts,
        // so a continuation is recognised even when its prefix was evicted)
        if (depth === 0) this.groupTurn = 0;
        else if (priorAccesses > this.groupTurn) this.groupTurn = priorAccesses;
        if (depth > 0 && this.groupTurn > 0) turn = this.groupTurn >= 2 ? 2 : 1;
        if (promptBlocks !== undefined && depth === promptBlocks - 1) c += 1;
      }
    }
    // own access count in log2 buckets: 0, 1, 2-3, 4-7, ..., 64+
    const own = priorAccesses < 1 ? 0 : Math.min(7, 32 - Math.clz32(priorAccesses));
    c += 2 * (own * 3 + turn);
    if (!this.combine) return c;
    return c * SPLITS + (p === undefined ? NO_SIGNAL : Math.min(SPLITS - 2, Math.floor(p * (SPLITS - 1))));
  }

  private advance(info: PredictiveEntryInfo | undefined): void {
    if (!this.useTime) this.now = this.clock;
    else if (info?.nowUs !== undefined && info.nowUs / 1000 > this.now) this.now = info.nowUs / 1000;
  }

  private observeGap(s: number): void {
    const gap = this.now - (this.last[s] as number);
    const i = (this.cls[s] as number) * BINS + binOf(gap);
    this.gaps[i] = (this.gaps[i] as number) + 1;
    this.dirty[this.cls[s] as number] = 1;
    this.tick();
  }

  private tick(): void {
    if (++this.observations % this.refreshEvery === 0) this.refresh();
  }

  /**
   * Recomputes score[class][ageBin] = P(reuse | age) / E[time to reuse | age] for the classes
   * whose counts changed (a class's scores depend on its own counts only).
   */
  private refresh(): void {
    const dirty = this.dirty;
    for (let c = 0; c < this.classes; c++) {
      if (dirty[c] === 0) continue;
      dirty[c] = 0;
      let r = 0;
      let w = 0;
      const never = this.never[c] as number;
      for (let b = BINS - 1; b >= 0; b--) {
        const g = this.gaps[c * BINS + b] as number;
        r += g;
        const age = binLow(b);
        // a gap in bin b is counted at the bin's midpoint
        w += (g * (age + binLow(b + 1))) / 2;
        // weak prior: half a reuse two bins later, half a never
        const rp = r + 0.5;
        const p = rp / (rp + never + 0.5);
        const e = Math.max(1, (w + 0.5 * binLow(b + 2)) / rp - age);
        this.score[c * BINS + b] = p / e;
      }
    }
  }

  /**
   * Tracks `key` (a key remembered in the history counts as a reuse for learning). A tracked
   * key is touched.
   * @param info - {@link PredictiveEntryInfo}: depth/promptBlocks/matchedBlocks and/or
   *   `reuseProbability` in [0, 1].
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a bad key or a reuse probability outside
   *   [0, 1]; nothing changes then.
   */
  insert(key: number, info?: PredictiveEntryInfo): void {
    requireKey(key);
    let s = this.slotOf(key);
    if (s !== -1 && this.list[s] !== this.classes) {
      this.touch(key, info);
      return;
    }
    const prior = s === -1 ? 0 : (this.count[s] as number);
    const c = this.classOf(key, info, prior);
    this.advance(info);
    if (s === -1) s = this.addKey(key);
    else {
      this.observeGap(s);
      this.unlink(s);
    }
    this.count[s] = prior + 1;
    this.access(s, c, info);
  }

  /**
   * Places an accessed key. Blocks of one prompt share its start time, and deeper blocks go
   * behind shallower ones (toward the tail), so a prompt's suffix is evicted before its prefix:
   * a block is only useful while every block before it is cached.
   */
  private access(s: number, c: number, info: PredictiveEntryInfo | undefined): void {
    const depth = info?.depth;
    if (depth === undefined || depth === 0) {
      this.groupStart = this.now;
      if (++this.gen > 0xffffffff) {
        this.gen = 1;
        this.cursorGen.fill(0);
      }
    }
    this.cls[s] = c;
    this.clock++;
    this.unlink(s);
    const at = this.cursorGen[c] === this.gen ? (this.cursor[c] as number) : -1;
    if (depth !== undefined && at !== -1 && this.list[at] === c) {
      this.last[s] = this.groupStart;
      this.insertAfter(at, s);
    } else {
      this.last[s] = depth === undefined ? this.now : this.groupStart;
      this.pushHead(c, s);
    }
    this.cursor[c] = s;
    this.cursorGen[c] = this.gen;
    this.occupied[c >>> 5] = (this.occupied[c >>> 5] as number) | (1 << (c & 31));
  }

  /**
   * A reuse of a tracked key: learns its gap and reclassifies it.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a reuse probability outside [0, 1].
   */
  touch(key: number, info?: PredictiveEntryInfo): void {
    const s = this.slotOf(key);
    if (s === -1 || this.list[s] === this.classes) return;
    const prior = this.count[s] as number;
    const c = this.classOf(key, info, prior);
    this.advance(info);
    this.observeGap(s);
    this.count[s] = prior + 1;
    this.access(s, c, info);
  }

  /** Evicts a tracked key into the history (it keeps its class and last access for learning). */
  remove(key: number): void {
    const s = this.slotOf(key);
    const ghost = this.classes;
    if (s === -1 || this.list[s] === ghost) return;
    this.unlink(s);
    this.pushHead(ghost, s);
    while ((this.lens[ghost] as number) > this.historySize) {
      const t = this.tails[ghost] as number;
      const c = this.cls[t] as number;
      this.never[c] = (this.never[c] as number) + 1;
      this.dirty[c] = 1;
      this.unlink(t);
      this.dropSlot(t);
      this.tick();
    }
  }

  victim(): number {
    let best = -1;
    let bestScore = Number.POSITIVE_INFINITY;
    let bestLast = Number.POSITIVE_INFINITY;
    const occupied = this.occupied;
    const tails = this.tails;
    // classes in ascending order, as a full scan would visit them (ties go to the first)
    for (let w = 0; w < occupied.length; w++) {
      let bits = occupied[w] as number;
      while (bits !== 0) {
        const low = bits & -bits;
        bits ^= low;
        const c = (w << 5) + 31 - Math.clz32(low);
        const t = tails[c] as number;
        if (t === -1) {
          occupied[w] = (occupied[w] as number) & ~low;
          continue;
        }
        const lastAccess = this.last[t] as number;
        const sc = this.score[c * BINS + binOf(this.now - lastAccess)] as number;
        if (sc < bestScore || (sc === bestScore && lastAccess < bestLast)) {
          best = t;
          bestScore = sc;
          bestLast = lastAccess;
        }
      }
    }
    return best === -1 ? -1 : (this.keys[best] as number);
  }

  /**
   * Runs `n` accesses of a simulated cache (an expert of `adaptive`): each touches its key when
   * resident, else evicts down to `capacity - 1` keys and inserts it — the decisions of `has`,
   * then `touch` or `remove(victim())`… `insert`. Sets `bit` in `hits[j]` when access j hit.
   * One call per batch: this class's own calls stay monomorphic (inlined).
   * @internal
   */
  simulateBatch(keys: Uint32Array, infos: readonly (PredictiveEntryInfo | undefined)[], hits: Uint8Array, n: number, capacity: number, bit: number): void {
    for (let j = 0; j < n; j++) {
      const key = keys[j] as number;
      const info = infos[j];
      if (this.has(key)) {
        this.touch(key, info);
        hits[j] = (hits[j] as number) | bit;
      } else {
        while (this.size >= capacity) this.remove(this.victim());
        this.insert(key, info);
      }
    }
  }

  has(key: number): boolean {
    const s = this.slotOf(key);
    return s !== -1 && this.list[s] !== this.classes;
  }

  /** Forgets tracked keys and the history; the learned statistics are kept. */
  clear(): void {
    this.resetTable();
    this.cursor.fill(-1);
    this.cursorGen.fill(0);
    this.occupied.fill(0);
  }
}
