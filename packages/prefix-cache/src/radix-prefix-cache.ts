import {
  type EvictionEntryInfo,
  type EvictionPolicy,
  type KvEvent,
  KvmgrError,
  type PrefixCache,
  type PrefixCacheInsertOptions,
  type PrefixCacheStats,
  type PrefixEvictResult,
  type PrefixInsertResult,
  type PrefixMatch,
  type PrefixMatchOptions,
  type PrefixNodeHandle,
  invalidArgument,
  requireNonNegativeInt,
  requirePositiveInt,
} from '@kvmgr/core';
import { ChildTable } from './child-table.js';
import { decodeHandle, encodeHandle, nextGeneration } from './handles.js';
import { hashKeys32, hashNamespace, hashOut, hashPage, toBigHash } from './hash64.js';
import { LruPolicy } from './lru-policy.js';
import { PolicyTracker } from './policy-tracker.js';
import { requireU32Blocks, requireU32Keys } from './validate-keys.js';

/** Options of {@link RadixPrefixCache}. */
export interface RadixPrefixCacheOptions {
  /**
   * Keys per page (= the engine block size when keys are token ids; 1 when each key is a whole
   * block). Edges split only at page boundaries and one block handle is kept per page.
   * @default 16
   */
  readonly pageSize?: number;
  /**
   * Eviction order over node ids. The cache tracks every evictable node (unlocked, unpinned) and
   * touches a matched path from its deepest node up to the root, so with a recency policy a
   * parent is never older than its children and the victim is a leaf. A non-leaf victim evicts
   * its subtree, deepest pages first. The `info` object passed to `insert`/`touch` is reused:
   * read it, do not keep it.
   * @default new LruPolicy()
   */
  readonly policy?: EvictionPolicy;
  /** Initial node capacity (arrays grow by doubling). @default 1024 */
  readonly initialNodes?: number;
}

/**
 * Options of {@link RadixPrefixCache.insert} and {@link BlockHashIndex.insert}: core's
 * (`namespace`, `nowUs`, `resumeFrom` / `resumeLength`) plus `partialPage`.
 */
export interface PrefixInsertOptions extends PrefixCacheInsertOptions {
  /**
   * What to do with keys after the last full page: `'ignore'` caches the full pages only (as
   * engines cache full blocks only); `'error'` throws `KVMGR_INVALID_ARGUMENT`.
   * @default 'ignore'
   */
  readonly partialPage?: 'ignore' | 'error';
}

const ROOT = 2;
const LIVE = 1;
const FREE = 0;
const EMPTY = new Uint32Array(0);
const EMPTY_BLOCKS: number[] = [];
const HAS_BUFFER = typeof Buffer === 'function' && typeof Buffer.from === 'function';

/** A byte view of a `Uint32Array` query for native comparison; undefined for other arrays. */
function queryBytes(keys: ArrayLike<number>): Buffer | undefined {
  return HAS_BUFFER && keys instanceof Uint32Array && keys.length >= 64 ? Buffer.from(keys.buffer, keys.byteOffset, keys.byteLength) : undefined;
}
/** Rough V8 cost of one typed-array view object, bytes (for the metadata estimate). */
const VIEW_BYTES = 72;

/**
 * Page-aligned radix-tree prefix cache over unsigned 32-bit key sequences (token ids, or one key
 * per block with `pageSize` 1), with namespaces, reference-counted locks, pins, a pluggable
 * eviction policy and vLLM-style KV events.
 *
 * Nodes live in typed arrays indexed by node id; each edge keeps its keys, one block handle per
 * page and one chained 64-bit block hash per page. Children are found through one open-addressing
 * table keyed by (parent, first page): the key itself when `pageSize` is 1, else a 32-bit hash of
 * the page checked against the stored page, so siblings that share their first token but differ
 * inside the first page stay apart. Eviction removes pages from the tail of leaves, so with the
 * built-in LRU it is exactly block-level LRU in which every block of a request is touched.
 *
 * @example
 * ```ts
 * const cache = new RadixPrefixCache({ pageSize: 4 });
 * cache.insert([1, 2, 3, 4, 5, 6, 7, 8], [10, 11]);
 * cache.match([1, 2, 3, 4, 9, 9, 9, 9]).blocks; // [10]
 * ```
 * @see sgl-project/sglang:python/sglang/srt/mem_cache/radix_cache.py
 * @see vllm-project/vllm:vllm/v1/core/kv_cache_utils.py
 */
export class RadixPrefixCache implements PrefixCache {
  /** Keys per page. */
  readonly pageSize: number;
  /** Receives KV events (`BlockStored`, `BlockRemoved`, `AllBlocksCleared`); undefined = none. */
  onEvent: ((event: KvEvent) => void) | undefined = undefined;

  private readonly policy: EvictionPolicy;
  private readonly table: ChildTable;
  private readonly roots = new Map<string, number>();
  private cap: number;
  private parent: Int32Array;
  private childKey: Uint32Array;
  private firstChild: Int32Array;
  private nextSib: Int32Array;
  private prevSib: Int32Array;
  /** Policy membership, lock/pin references and parking of protected nodes. */
  private readonly tracker: PolicyTracker;
  private lastAccess: Float64Array;
  private state: Uint8Array;
  /** Generation of each node id, bumped when the id is freed (see `handles.ts`). */
  private gens: Uint32Array;
  private edgeKeys: Uint32Array[] = [];
  private edgeBlocks: Uint32Array[] = [];
  /**
   * Two u32 per page: hi, lo of the chained block hash; empty until needed (computed at insert
   * when `onEvent` is set, else on the first event that needs them). Roots hold their seed.
   */
  private edgeHashes: Uint32Array[] = [];
  /** Byte views of `edgeKeys` for native `Buffer#compare` (created on first use). */
  private edgeBufs: (Buffer | undefined)[] = [];
  private freeIds: number[] = [];
  private highId = 0;
  private clock = 0;
  private readonly info: { nowUs: number; size: number } = { nowUs: 0, size: 0 };

  private nQueries = 0;
  private nQueryKeys = 0;
  private nHitKeys = 0;
  private nInsertedKeys = 0;
  private nEvictedKeys = 0;
  private nCachedKeys = 0;
  private nNodes = 0;
  private nEvictablePages = 0;

  /**
   * @param options - see {@link RadixPrefixCacheOptions}.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when `pageSize` or `initialNodes` is not a
   *   positive integer.
   */
  constructor(options: RadixPrefixCacheOptions = {}) {
    this.pageSize = requirePositiveInt('pageSize', options.pageSize ?? 16);
    const n = requirePositiveInt('initialNodes', options.initialNodes ?? 1024);
    this.policy = options.policy ?? new LruPolicy(n);
    this.table = new ChildTable(n);
    this.cap = n;
    this.parent = new Int32Array(n);
    this.childKey = new Uint32Array(n);
    this.firstChild = new Int32Array(n);
    this.nextSib = new Int32Array(n);
    this.prevSib = new Int32Array(n);
    this.tracker = new PolicyTracker(this.policy, n);
    this.lastAccess = new Float64Array(n);
    this.state = new Uint8Array(n);
    this.gens = new Uint32Array(n);
  }

  /** Pages that {@link evict} could remove now (in unlocked, unpinned nodes). */
  get evictablePages(): number {
    return this.nEvictablePages;
  }

  /** Pages cached, all namespaces. */
  get cachedPages(): number {
    return this.nCachedKeys / this.pageSize;
  }

  /**
   * Counters; `metadataBytes` estimates the typed arrays, views and tables held. O(nodes): read it
   * for reports, not on every engine step.
   */
  get stats(): PrefixCacheStats {
    let edgeBytes = 0;
    for (let id = 0; id < this.highId; id++) {
      if (this.state[id] !== LIVE) continue;
      const k = this.edgeKeys[id] as Uint32Array;
      const b = this.edgeBlocks[id] as Uint32Array;
      const h = this.edgeHashes[id] as Uint32Array;
      edgeBytes += (k.length + b.length + h.length) * 4 + (this.edgeBufs[id] ? 4 : 3) * VIEW_BYTES;
    }
    // 5 int32/uint32 arrays + 1 float64 + 1 uint8 per node slot, 3 JS array slots, the
    // tracker's references, LRU 9 bytes
    const nodeBytes = this.cap * (5 * 4 + 8 + 1 + 3 * 8) + this.tracker.bytes;
    return {
      queries: this.nQueries,
      queryKeys: this.nQueryKeys,
      hitKeys: this.nHitKeys,
      insertedKeys: this.nInsertedKeys,
      evictedKeys: this.nEvictedKeys,
      cachedKeys: this.nCachedKeys,
      nodes: this.nNodes,
      metadataBytes: edgeBytes + nodeBytes + this.table.bytes + (this.policy instanceof LruPolicy ? this.cap * 9 : 0),
    };
  }

  // ---------------------------------------------------------------- node storage

  private grow(): void {
    const cap = this.cap * 2;
    const gi = (a: Int32Array): Int32Array => {
      const r = new Int32Array(cap);
      r.set(a);
      return r;
    };
    this.parent = gi(this.parent);
    this.firstChild = gi(this.firstChild);
    this.nextSib = gi(this.nextSib);
    this.prevSib = gi(this.prevSib);
    this.tracker.grow(cap);
    const ck = new Uint32Array(cap);
    ck.set(this.childKey);
    this.childKey = ck;
    const la = new Float64Array(cap);
    la.set(this.lastAccess);
    this.lastAccess = la;
    const st = new Uint8Array(cap);
    st.set(this.state);
    this.state = st;
    const gn = new Uint32Array(cap);
    gn.set(this.gens);
    this.gens = gn;
    this.cap = cap;
  }

  private alloc(): number {
    let id: number;
    if (this.freeIds.length > 0) id = this.freeIds.pop() as number;
    else {
      if (this.highId === this.cap) this.grow();
      id = this.highId++;
    }
    this.firstChild[id] = -1;
    this.nextSib[id] = -1;
    this.prevSib[id] = -1;
    this.tracker.reset(id);
    return id;
  }

  private rootOf(namespace: string, create: boolean): number {
    const r = this.roots.get(namespace);
    if (r !== undefined || !create) return r ?? -1;
    const id = this.alloc();
    this.state[id] = ROOT;
    this.parent[id] = -1;
    hashNamespace(namespace);
    this.edgeKeys[id] = EMPTY;
    this.edgeBlocks[id] = EMPTY;
    this.edgeHashes[id] = Uint32Array.of(hashOut[0] as number, hashOut[1] as number);
    this.roots.set(namespace, id);
    return id;
  }

  private pageKey(keys: ArrayLike<number>, pos: number): number {
    return this.pageSize === 1 ? (keys[pos] as number) : hashKeys32(keys, pos, this.pageSize);
  }

  /** Child of `node` whose first page equals keys[pos .. pos+pageSize); -1 when none. */
  private findChild(node: number, keys: ArrayLike<number>, pos: number): number {
    const P = this.pageSize;
    const table = this.table;
    if (P === 1) {
      const s = table.findSlot(node, keys[pos] as number, -1);
      return s < 0 ? -1 : table.childAt(s);
    }
    const ck = hashKeys32(keys, pos, P);
    let s = table.findSlot(node, ck, -1);
    while (s >= 0) {
      const c = table.childAt(s);
      const ek = this.edgeKeys[c] as Uint32Array;
      let i = 0;
      while (i < P && ek[i] === keys[pos + i]) i++;
      if (i === P) return c;
      s = table.findSlot(node, ck, s + 1);
    }
    return -1;
  }

  private linkChild(p: number, c: number): void {
    const f = this.firstChild[p] as number;
    this.nextSib[c] = f;
    this.prevSib[c] = -1;
    if (f !== -1) this.prevSib[f] = c;
    this.firstChild[p] = c;
  }

  private unlinkChild(p: number, c: number): void {
    const prev = this.prevSib[c] as number;
    const next = this.nextSib[c] as number;
    if (prev === -1) this.firstChild[p] = next;
    else this.nextSib[prev] = next;
    if (next !== -1) this.prevSib[next] = prev;
  }

  private infoFor(id: number): EvictionEntryInfo {
    this.info.nowUs = this.lastAccess[id] as number;
    this.info.size = (this.edgeBlocks[id] as Uint32Array).length;
    return this.info;
  }

  /** Splits node `c` after `m` keys (page aligned, 0 < m < edge length); returns the new upper node. */
  private split(c: number, m: number): number {
    const P = this.pageSize;
    const p = this.parent[c] as number;
    const id = this.alloc();
    // the policy first (it may refuse, e.g. ARC at capacity): nothing is changed yet then.
    // Same references as its child; when evictable, the new parent sits just above it in the
    // eviction order.
    this.edgeBlocks[id] = (this.edgeBlocks[c] as Uint32Array).subarray(0, m / P);
    this.lastAccess[id] = this.lastAccess[c] as number;
    try {
      this.tracker.addLike(id, c, () => {
        if (this.policy instanceof LruPolicy) this.policy.insertAfter(id, c);
        else this.policy.insert(id, this.infoFor(id));
      });
    } catch (e) {
      this.releaseId(id);
      throw e;
    }
    const oldKey = this.childKey[c] as number;
    this.state[id] = LIVE;
    this.parent[id] = p;
    this.childKey[id] = oldKey;
    this.table.setChildAt(this.table.slotOfChild(p, oldKey, c), id);
    // id takes c's place among p's children
    const prev = this.prevSib[c] as number;
    const next = this.nextSib[c] as number;
    this.prevSib[id] = prev;
    this.nextSib[id] = next;
    if (prev === -1) this.firstChild[p] = id;
    else this.nextSib[prev] = id;
    if (next !== -1) this.prevSib[next] = id;
    this.firstChild[id] = c;
    this.prevSib[c] = -1;
    this.nextSib[c] = -1;
    this.parent[c] = id;
    const ek = this.edgeKeys[c] as Uint32Array;
    const eb = this.edgeBlocks[c] as Uint32Array;
    const eh = this.edgeHashes[c] as Uint32Array;
    const mp = m / P;
    this.edgeKeys[id] = ek.subarray(0, m);
    this.edgeBlocks[id] = eb.subarray(0, mp);
    this.edgeHashes[id] = eh.subarray(0, 2 * mp);
    this.edgeKeys[c] = ek.subarray(m);
    this.edgeBlocks[c] = eb.subarray(mp);
    this.edgeHashes[c] = eh.subarray(2 * mp);
    this.edgeBufs[c] = undefined;
    this.edgeBufs[id] = undefined;
    const newKey = this.pageKey(this.edgeKeys[c] as Uint32Array, 0);
    this.childKey[c] = newKey;
    this.table.add(id, newKey, c);
    this.nNodes++;
    return id;
  }

  /** An id from {@link alloc} that never became a node goes back (a refused policy insert). */
  private releaseId(id: number): void {
    this.edgeKeys[id] = EMPTY;
    this.edgeBlocks[id] = EMPTY;
    this.edgeHashes[id] = EMPTY;
    this.edgeBufs[id] = undefined;
    this.gens[id] = nextGeneration(this.gens[id] as number);
    this.freeIds.push(id);
  }

  /**
   * Undoes {@link split} (the insert that split failed): `c` takes back the upper node `id`'s
   * place and its original edge (`ek`, `eb`, `eh`, the arrays before the split).
   */
  private unsplit(id: number, c: number, ek: Uint32Array, eb: Uint32Array, eh: Uint32Array): void {
    const p = this.parent[id] as number;
    const oldKey = this.childKey[id] as number;
    this.table.removeSlot(this.table.slotOfChild(id, this.childKey[c] as number, c));
    this.table.setChildAt(this.table.slotOfChild(p, oldKey, id), c);
    const prev = this.prevSib[id] as number;
    const next = this.nextSib[id] as number;
    this.prevSib[c] = prev;
    this.nextSib[c] = next;
    if (prev === -1) this.firstChild[p] = c;
    else this.nextSib[prev] = c;
    if (next !== -1) this.prevSib[next] = c;
    this.parent[c] = p;
    this.childKey[c] = oldKey;
    this.edgeKeys[c] = ek;
    this.edgeBlocks[c] = eb;
    this.edgeHashes[c] = eh;
    this.edgeBufs[c] = undefined;
    this.tracker.remove(id);
    this.state[id] = FREE;
    this.nNodes--;
    this.releaseId(id);
  }

  /**
   * Keys of edge `c` that match `keys` from `pos` (page aligned, ≥ one page). With a byte view
   * `qb` of the query, a whole-edge match is one native `Buffer#compare` (memcmp), several times
   * faster than a JS loop over 2K keys; a partial match falls back to the loop.
   */
  private matchedInEdge(c: number, keys: ArrayLike<number>, pos: number, end: number, qb: Buffer | undefined): number {
    const ek = this.edgeKeys[c] as Uint32Array;
    const P = this.pageSize;
    const limit = Math.min(ek.length, end - pos);
    if (qb !== undefined && limit >= 64) {
      let eb = this.edgeBufs[c];
      if (eb === undefined) {
        eb = Buffer.from(ek.buffer, ek.byteOffset, ek.byteLength);
        this.edgeBufs[c] = eb;
      }
      if (eb.compare(qb, pos * 4, (pos + limit) * 4, 0, limit * 4) === 0) return limit - (limit % P);
    }
    let m = P; // the first page matched in findChild
    while (m < limit && ek[m] === keys[pos + m]) m++;
    return m - (m % P);
  }

  private touchPath(node: number, t: number): void {
    const tracker = this.tracker;
    for (let n = node; this.state[n] === LIVE; n = this.parent[n] as number) {
      this.lastAccess[n] = t;
      this.info.nowUs = t;
      this.info.size = (this.edgeBlocks[n] as Uint32Array).length;
      tracker.touch(n, this.info);
    }
  }

  // ---------------------------------------------------------------- public API

  /**
   * Finds the longest cached page-aligned prefix of `keys`.
   *
   * @param keys - u32 keys (token ids, or block keys when `pageSize` is 1); a trailing partial
   *   page is never matched.
   * @param options - `namespace` (@default ''), `touch` (count as an access for eviction order
   *   and stats, @default true), `nowUs` (access time, µs; @default an internal counter).
   * @returns `matchedLength` (keys, a multiple of `pageSize`), one block handle per matched page,
   *   and the deepest matched node (`-1` when nothing matched). A match that ends inside an edge
   *   splits it there, so the returned node covers exactly the matched prefix.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when a key is not an integer in [0, 2^32).
   */
  match(keys: ArrayLike<number>, options?: PrefixMatchOptions): PrefixMatch {
    requireU32Keys('keys', keys);
    const touch = options?.touch ?? true;
    const root = this.rootOf(options?.namespace ?? '', false);
    const P = this.pageSize;
    const end = keys.length - (keys.length % P);
    let blocks: number[] = EMPTY_BLOCKS;
    let node = root;
    let pos = 0;
    const qb = queryBytes(keys);
    if (root >= 0) {
      while (pos < end) {
        const c = this.findChild(node, keys, pos);
        if (c < 0) break;
        const m = this.matchedInEdge(c, keys, pos, end, qb);
        const eb = this.edgeBlocks[c] as Uint32Array;
        // sized once at the first hit (cheaper than growing by push for 2K-page matches)
        if (pos === 0) blocks = new Array<number>(end / P);
        for (let i = 0, np = m / P, b0 = pos / P; i < np; i++) blocks[b0 + i] = eb[i] as number;
        pos += m;
        node = m < (this.edgeKeys[c] as Uint32Array).length ? this.split(c, m) : c;
        if (node !== c) break;
      }
    }
    if (touch) {
      this.nQueries++;
      this.nQueryKeys += keys.length;
      this.nHitKeys += pos;
      if (pos > 0) this.touchPath(node, options?.nowUs ?? ++this.clock);
    }
    if (pos === 0) return { matchedLength: 0, blocks: [], node: -1 };
    blocks.length = pos / P;
    return { matchedLength: pos, blocks, node: encodeHandle(node, this.gens[node] as number) };
  }

  /**
   * Caches the full pages of `keys`, one block handle per page, sharing the longest cached
   * prefix and splitting an edge at the page where the new keys diverge. The whole path is
   * touched.
   *
   * @param keys - u32 keys; see {@link PrefixInsertOptions.partialPage} for a trailing partial page.
   * @param blocks - block handles (u32), one per full page of `keys`; extra entries are ignored.
   * @param options - `namespace` (@default ''), `nowUs`, `partialPage` (@default 'ignore'),
   *   `resumeFrom` / `resumeLength` (continue below a held node whose path holds
   *   `keys[0, resumeLength)`, without walking it; @default from the root).
   * @returns `existingLength` (keys already cached), `adoptedBlocks` (handles of the new pages,
   *   now owned by the cache), `duplicateBlocks` (handles given for pages already cached under a
   *   different handle: the caller frees them; a handle equal to the cached one is in neither
   *   list; the resumed prefix is not compared) and the node at the end of the path (`-1` when
   *   no full page was given).
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when a key or block is not a u32, when fewer
   *   blocks than full pages are given, when `partialPage` is 'error' and `keys.length` is not
   *   a multiple of `pageSize`, or when `resumeLength` is not the number of keys on the path to
   *   `resumeFrom` in `namespace` (at most the full pages of `keys`); `KVMGR_UNKNOWN_HANDLE` for
   *   a dead `resumeFrom`. Nothing is changed then.
   */
  insert(keys: ArrayLike<number>, blocks: ArrayLike<number>, options?: PrefixInsertOptions): PrefixInsertResult {
    requireU32Keys('keys', keys);
    const P = this.pageSize;
    if (options?.partialPage === 'error' && keys.length % P !== 0) {
      throw invalidArgument('keys.length', keys.length, `a multiple of pageSize ${P}`);
    }
    const end = keys.length - (keys.length % P);
    const pages = end / P;
    const namespace = options?.namespace ?? '';
    const resumeFrom = options?.resumeFrom ?? -1;
    const resumeNode = resumeFrom === -1 ? -1 : this.resumeNode(resumeFrom, options?.resumeLength, end, namespace);
    const from = resumeNode === -1 ? 0 : (options?.resumeLength as number);
    requireU32Blocks('blocks', blocks, Math.min(pages, blocks?.length ?? 0), from / P);
    if (blocks.length < pages) {
      throw invalidArgument('blocks.length', blocks.length, `>= ${pages} (one block per full page of ${P} keys)`);
    }
    const duplicateBlocks: number[] = [];
    const adoptedBlocks: number[] = [];
    if (pages === 0) return { existingLength: 0, adoptedBlocks, duplicateBlocks, node: -1 };
    const newRoot = !this.roots.has(namespace);
    const root = this.rootOf(namespace, true);
    const qb = queryBytes(keys);
    let node = resumeNode === -1 ? root : resumeNode;
    let pos = from;
    // an edge split by this insert, with its arrays before the split, to undo it on a throw
    let splitLower = -1;
    let splitEdge: [Uint32Array, Uint32Array, Uint32Array] | undefined;
    while (pos < end) {
      const c = this.findChild(node, keys, pos);
      if (c < 0) break;
      const m = this.matchedInEdge(c, keys, pos, end, qb);
      const eb = this.edgeBlocks[c] as Uint32Array;
      for (let i = 0, np = m / P, b0 = pos / P; i < np; i++) {
        const given = blocks[b0 + i] as number;
        if (given !== eb[i]) duplicateBlocks.push(given);
      }
      pos += m;
      if (m < (this.edgeKeys[c] as Uint32Array).length) {
        const edge: [Uint32Array, Uint32Array, Uint32Array] = [this.edgeKeys[c] as Uint32Array, this.edgeBlocks[c] as Uint32Array, this.edgeHashes[c] as Uint32Array];
        node = this.split(c, m);
        splitLower = c;
        splitEdge = edge;
        break;
      }
      node = c;
    }
    const existingLength = pos;
    if (pos < end) {
      try {
        node = this.addLeaf(node, keys, blocks, pos, end, adoptedBlocks);
      } catch (e) {
        // the policy refused the new leaf: leave the cache as it was
        if (splitEdge !== undefined) this.unsplit(node, splitLower, ...splitEdge);
        if (newRoot && this.firstChild[root] === -1) {
          this.roots.delete(namespace);
          this.state[root] = FREE;
          this.releaseId(root);
        }
        throw e;
      }
    }
    this.nInsertedKeys += end - existingLength;
    this.touchPath(node, options?.nowUs ?? ++this.clock);
    return { existingLength, adoptedBlocks, duplicateBlocks, node: encodeHandle(node, this.gens[node] as number) };
  }

  /**
   * The node id of `handle` for an insert resumed there: checks that its path from the root of
   * `namespace` holds `length` keys (page aligned, ≤ `end`), walking parent links only.
   */
  private resumeNode(handle: PrefixNodeHandle, length: number | undefined, end: number, namespace: string): number {
    const id = this.requireHandle(handle, 'insert');
    let d = 0;
    let n = id;
    for (; this.state[n] === LIVE; n = this.parent[n] as number) d += (this.edgeKeys[n] as Uint32Array).length;
    if (n !== this.rootOf(namespace, false)) throw invalidArgument('resumeFrom', handle, `a node of namespace ${JSON.stringify(namespace)}`);
    if (length !== d || d > end) throw invalidArgument('resumeLength', length, `${d} (the keys on the path to resumeFrom), at most the ${end} keys of full pages`);
    return id;
  }

  private addLeaf(
    parent: number,
    keys: ArrayLike<number>,
    blocks: ArrayLike<number>,
    pos: number,
    end: number,
    adopted: number[],
  ): number {
    const P = this.pageSize;
    const len = end - pos;
    const np = len / P;
    const id = this.alloc();
    const eb = new Uint32Array(np);
    const b0 = pos / P;
    for (let i = 0; i < np; i++) eb[i] = blocks[b0 + i] as number;
    // the policy first (it may refuse, e.g. ARC at capacity): nothing is changed yet then
    this.edgeBlocks[id] = eb;
    this.lastAccess[id] = this.clock;
    try {
      this.policy.insert(id, this.infoFor(id));
    } catch (e) {
      this.releaseId(id);
      throw e;
    }
    for (let i = 0; i < np; i++) adopted.push(eb[i] as number);
    const ek = new Uint32Array(len);
    if (keys instanceof Uint32Array) ek.set(keys.subarray(pos, end));
    else for (let i = 0; i < len; i++) ek[i] = keys[pos + i] as number;
    this.state[id] = LIVE;
    this.parent[id] = parent;
    const ck = this.pageKey(ek, 0);
    this.childKey[id] = ck;
    this.table.add(parent, ck, id);
    this.linkChild(parent, id);
    this.edgeKeys[id] = ek;
    this.edgeHashes[id] = EMPTY;
    this.edgeBufs[id] = undefined;
    this.nNodes++;
    this.nCachedKeys += len;
    this.nEvictablePages += np;
    if (this.onEvent) {
      const eh = this.hashesOf(id);
      const ph = this.edgeHashes[parent] as Uint32Array;
      const blockHashes: bigint[] = [];
      for (let i = 0; i < np; i++) blockHashes.push(toBigHash(eh[2 * i] as number, eh[2 * i + 1] as number));
      this.onEvent({
        type: 'BlockStored',
        blockHashes,
        parentBlockHash: this.state[parent] === ROOT ? null : toBigHash(ph[ph.length - 2] as number, ph[ph.length - 1] as number),
        tokenIds: Array.from(ek),
        blockSize: P,
      });
    }
    return id;
  }

  /** The chained block hashes of node `id`, computing them (and missing ancestors') on demand. */
  private hashesOf(id: number): Uint32Array {
    const have = this.edgeHashes[id] as Uint32Array;
    if (have.length !== 0) return have;
    const path: number[] = [];
    let n = id;
    while (this.state[n] === LIVE && (this.edgeHashes[n] as Uint32Array).length === 0) {
      path.push(n);
      n = this.parent[n] as number;
    }
    const P = this.pageSize;
    let ph = this.edgeHashes[n] as Uint32Array; // a root's seed or an ancestor with hashes
    for (let k = path.length - 1; k >= 0; k--) {
      const v = path[k] as number;
      const ek = this.edgeKeys[v] as Uint32Array;
      const np = ek.length / P;
      const eh = new Uint32Array(2 * np);
      let hi = ph[ph.length - 2] as number;
      let lo = ph[ph.length - 1] as number;
      for (let i = 0; i < np; i++) {
        hashPage(hi, lo, ek, i * P, P);
        hi = hashOut[0] as number;
        lo = hashOut[1] as number;
        eh[2 * i] = hi;
        eh[2 * i + 1] = lo;
      }
      this.edgeHashes[v] = eh;
      ph = eh;
    }
    return this.edgeHashes[id] as Uint32Array;
  }

  /** The node id of a handle. @throws `KVMGR_UNKNOWN_HANDLE` for a dead or stale handle. */
  private requireHandle(handle: PrefixNodeHandle, op: string): number {
    return decodeHandle(handle, this.highId, this.gens, (id) => this.state[id] === LIVE, 'node', op);
  }

  private addRef(handle: PrefixNodeHandle, refs: Int32Array, op: string): void {
    if (handle === -1) return;
    const node = this.requireHandle(handle, op);
    for (let n = node; this.state[n] === LIVE; n = this.parent[n] as number) {
      if (this.tracker.protect(n, refs)) this.nEvictablePages -= (this.edgeBlocks[n] as Uint32Array).length;
    }
  }

  private dropRef(handle: PrefixNodeHandle, refs: Int32Array, op: string): void {
    if (handle === -1) return;
    const node = this.requireHandle(handle, op);
    if (refs[node] === 0) {
      throw new KvmgrError('KVMGR_INVALID_STATE', `${op}: node ${handle} has no reference left to release`, {
        details: { node: handle },
      });
    }
    let n = node;
    try {
      for (; this.state[n] === LIVE; n = this.parent[n] as number) {
        if (this.tracker.release(n, refs, this.infoFor(n))) this.nEvictablePages += (this.edgeBlocks[n] as Uint32Array).length;
      }
    } catch (e) {
      // the policy refused a parked node (e.g. ARC at capacity; release left that node as it
      // was): take the references back on the nodes below it
      for (let u = node; u !== n; u = this.parent[u] as number) {
        if (this.tracker.protect(u, refs)) this.nEvictablePages -= (this.edgeBlocks[u] as Uint32Array).length;
      }
      throw e;
    }
  }

  /**
   * Protects the path root→`node` from eviction (one reference per call, counted on every node
   * of the path). `-1` is a no-op. The path's nodes stay in the eviction policy (so a frequency
   * policy keeps their counts); one the policy offers as a victim while protected is taken out
   * of it ("parked") until released. Amortized O(path length).
   * @throws KvmgrError `KVMGR_UNKNOWN_HANDLE` when `node` is not a live node.
   */
  lock(node: PrefixNodeHandle): void {
    this.addRef(node, this.tracker.lockRef, 'lock');
  }

  /**
   * Releases one {@link lock} reference on root→`node`; nodes that become evictable are most
   * recently used again (the release counts as an access: `touch`, or `insert` for a parked
   * node). `-1` is a no-op.
   * @throws KvmgrError `KVMGR_UNKNOWN_HANDLE` for a dead handle, `KVMGR_INVALID_STATE` when the
   *   node is not locked (nothing changes).
   */
  unlock(node: PrefixNodeHandle): void {
    this.dropRef(node, this.tracker.lockRef, 'unlock');
  }

  /**
   * Pins root→`node` (e.g. a system prompt): never evicted until unpinned. Reference counted.
   * @throws KvmgrError `KVMGR_UNKNOWN_HANDLE` when `node` is not a live node.
   */
  pin(node: PrefixNodeHandle): void {
    this.addRef(node, this.tracker.pinRef, 'pin');
  }

  /**
   * Releases one {@link pin} reference.
   * @throws KvmgrError `KVMGR_UNKNOWN_HANDLE` for a dead handle, `KVMGR_INVALID_STATE` when the
   *   node is not pinned (nothing changes).
   */
  unpin(node: PrefixNodeHandle): void {
    this.dropRef(node, this.tracker.pinRef, 'unpin');
  }

  /** Keys (tokens or block keys) from the root to the end of `node`. @throws `KVMGR_UNKNOWN_HANDLE`. */
  nodeDepth(node: PrefixNodeHandle): number {
    const id = this.requireHandle(node, 'nodeDepth');
    let d = 0;
    for (let n = id; this.state[n] === LIVE; n = this.parent[n] as number) d += (this.edgeKeys[n] as Uint32Array).length;
    return d;
  }

  /**
   * Evicts exactly `min(numPages, evictablePages)` pages in the policy's order, always from the
   * tail of a leaf (a leaf whose last page goes is removed, and its parent may become a leaf).
   * Emits one `BlockRemoved` with the removed pages' hashes.
   *
   * @param numPages - pages to free (non-negative integer).
   * @returns the freed block handles (caller returns them to its pool) and the keys removed.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when `numPages` is not a non-negative integer.
   */
  evict(numPages: number): PrefixEvictResult {
    requireNonNegativeInt('numPages', numPages);
    const P = this.pageSize;
    const freed: number[] = [];
    const hashes: bigint[] | undefined = this.onEvent ? [] : undefined;
    let remaining = numPages;
    const live = (v: number): boolean => v < this.highId && this.state[v] === LIVE;
    while (remaining > 0) {
      const v = this.tracker.victim(live);
      if (v < 0) break;
      let leaf = v;
      while (this.firstChild[leaf] !== -1) leaf = this.firstChild[leaf] as number;
      const eb = this.edgeBlocks[leaf] as Uint32Array;
      const eh = hashes ? this.hashesOf(leaf) : EMPTY;
      const pages = eb.length;
      const k = Math.min(pages, remaining);
      for (let i = pages - 1; i >= pages - k; i--) {
        freed.push(eb[i] as number);
        if (hashes) hashes.push(toBigHash(eh[2 * i] as number, eh[2 * i + 1] as number));
      }
      if (k === pages) this.removeLeaf(leaf);
      else this.trimLeaf(leaf, pages - k);
      remaining -= k;
      this.nEvictedKeys += k * P;
      this.nCachedKeys -= k * P;
      this.nEvictablePages -= k;
    }
    if (hashes && hashes.length > 0 && this.onEvent) this.onEvent({ type: 'BlockRemoved', blockHashes: hashes });
    return { blocks: freed, evictedKeys: freed.length * P };
  }

  private trimLeaf(leaf: number, keepPages: number): void {
    const P = this.pageSize;
    const ek = this.edgeKeys[leaf] as Uint32Array;
    // copy when the kept part is small, so the evicted tail's memory is released
    const shrink = <T extends Uint32Array>(a: T, n: number): Uint32Array =>
      n * 2 < a.buffer.byteLength / 4 ? a.slice(0, n) : a.subarray(0, n);
    this.edgeKeys[leaf] = shrink(ek, keepPages * P);
    this.edgeBlocks[leaf] = shrink(this.edgeBlocks[leaf] as Uint32Array, keepPages);
    const eh = this.edgeHashes[leaf] as Uint32Array;
    this.edgeHashes[leaf] = eh.length === 0 ? EMPTY : shrink(eh, 2 * keepPages);
    this.edgeBufs[leaf] = undefined;
  }

  private removeLeaf(leaf: number): void {
    const p = this.parent[leaf] as number;
    this.table.removeSlot(this.table.slotOfChild(p, this.childKey[leaf] as number, leaf));
    this.unlinkChild(p, leaf);
    this.tracker.remove(leaf);
    this.state[leaf] = FREE;
    this.edgeKeys[leaf] = EMPTY;
    this.edgeBlocks[leaf] = EMPTY;
    this.edgeHashes[leaf] = EMPTY;
    this.edgeBufs[leaf] = undefined;
    this.gens[leaf] = nextGeneration(this.gens[leaf] as number);
    this.freeIds.push(leaf);
    this.nNodes--;
  }

  /**
   * Drops every entry of every namespace (locks and pins included; all handles become invalid)
   * and emits `AllBlocksCleared`.
   * @returns the block handles the cache held.
   */
  clear(): PrefixEvictResult {
    const blocks: number[] = [];
    for (let id = 0; id < this.highId; id++) {
      if (this.state[id] === LIVE) for (const b of this.edgeBlocks[id] as Uint32Array) blocks.push(b);
    }
    const evictedKeys = this.nCachedKeys;
    // every handle given out becomes stale (ids restart from 0)
    for (let id = 0; id < this.highId; id++) this.gens[id] = nextGeneration(this.gens[id] as number);
    this.state.fill(FREE);
    this.edgeKeys = [];
    this.edgeBlocks = [];
    this.edgeHashes = [];
    this.edgeBufs = [];
    this.freeIds = [];
    this.highId = 0;
    this.roots.clear();
    this.table.clear();
    this.tracker.clear();
    this.nCachedKeys = 0;
    this.nNodes = 0;
    this.nEvictablePages = 0;
    this.onEvent?.({ type: 'AllBlocksCleared' });
    return { blocks, evictedKeys };
  }

  /**
   * Checks the structure (for tests and debugging): edges page aligned and non-empty, one block
   * and one hash per page, siblings' first pages distinct, child table and sibling lists agree,
   * lock/pin counts monotone along paths, counters consistent.
   * @throws KvmgrError `KVMGR_VERIFY_FAILED` naming the first broken invariant.
   */
  verify(): void {
    const fail = (msg: string): never => {
      throw new KvmgrError('KVMGR_VERIFY_FAILED', `RadixPrefixCache: ${msg}`);
    };
    const P = this.pageSize;
    let cached = 0;
    let nodes = 0;
    let evictable = 0;
    let tracked = 0;
    for (let id = 0; id < this.highId; id++) {
      if (this.state[id] !== LIVE) continue;
      nodes++;
      const ek = this.edgeKeys[id] as Uint32Array;
      const eb = this.edgeBlocks[id] as Uint32Array;
      const eh = this.edgeHashes[id] as Uint32Array;
      if (ek.length === 0 || ek.length % P !== 0) fail(`node ${id} edge length ${ek.length} not a positive multiple of ${P}`);
      if (eb.length * P !== ek.length || (eh.length !== 0 && eh.length !== 2 * eb.length)) fail(`node ${id} has ${eb.length} blocks for ${ek.length} keys`);
      cached += ek.length;
      const p = this.parent[id] as number;
      if (this.state[p] === FREE) fail(`node ${id} has a dead parent ${p}`);
      if (this.childKey[id] !== this.pageKey(ek, 0)) fail(`node ${id} child key mismatch`);
      if (this.table.slotOfChild(p, this.childKey[id] as number, id) < 0) fail(`node ${id} missing from the child table`);
      const { lockRef, pinRef } = this.tracker;
      if ((lockRef[id] as number) < 0 || (pinRef[id] as number) < 0) fail(`node ${id} negative reference`);
      if (this.state[p] === LIVE && ((lockRef[p] as number) < (lockRef[id] as number) || (pinRef[p] as number) < (pinRef[id] as number))) {
        fail(`node ${id} holds more references than its parent ${p}`);
      }
      if (this.policy.has(id)) tracked++;
      if (this.tracker.isEvictable(id)) evictable += eb.length;
      const why = this.tracker.inconsistency(id);
      if (why !== undefined) fail(why);
    }
    for (let id = 0; id < this.highId; id++) {
      if (this.state[id] === FREE) continue;
      const seen = new Map<string, number>();
      let count = 0;
      for (let c = this.firstChild[id] as number; c !== -1; c = this.nextSib[c] as number) {
        count++;
        if (this.parent[c] !== id) fail(`child ${c} of ${id} has parent ${this.parent[c]}`);
        const first = Array.from((this.edgeKeys[c] as Uint32Array).subarray(0, P)).join(',');
        if (seen.has(first)) fail(`siblings ${seen.get(first)} and ${c} share their first page`);
        seen.set(first, c);
      }
      if (count > nodes) fail('sibling list cycle');
    }
    if (this.table.size !== nodes) fail(`child table holds ${this.table.size} entries for ${nodes} nodes`);
    if (cached !== this.nCachedKeys) fail(`cachedKeys ${this.nCachedKeys} != ${cached}`);
    if (nodes !== this.nNodes) fail(`nodes ${this.nNodes} != ${nodes}`);
    if (evictable !== this.nEvictablePages) fail(`evictablePages ${this.nEvictablePages} != ${evictable}`);
    if (tracked !== this.policy.size) fail(`policy tracks ${this.policy.size} keys, expected ${tracked}`);
  }
}
