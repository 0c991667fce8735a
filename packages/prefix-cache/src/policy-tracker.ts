/**
 * The eviction-policy side of a prefix index, shared by {@link RadixPrefixCache} and
 * {@link BlockHashIndex}: which entries the policy tracks, the lock and pin reference counts
 * that protect entries, and lazy parking of protected entries.
 *
 * A protected entry stays in the policy (so a frequency policy such as LFU keeps its count
 * across lock/unlock); only when the policy offers it as a victim is it taken out ("parked")
 * until released. Releasing an entry counts as an access (`touch`, or `insert` when parked).
 * Per-entry state lives in typed arrays indexed by entry id, grown with the owner's.
 */
import type { EvictionEntryInfo, EvictionPolicy } from '@kvmgr/core';

export class PolicyTracker {
  /** Lock references per entry. */
  lockRef: Int32Array;
  /** Pin references per entry. */
  pinRef: Int32Array;
  /** 1 = protected and out of the policy (offered as a victim while protected); else 0. */
  private parked: Uint8Array;

  constructor(
    readonly policy: EvictionPolicy,
    capacity: number,
  ) {
    this.lockRef = new Int32Array(capacity);
    this.pinRef = new Int32Array(capacity);
    this.parked = new Uint8Array(capacity);
  }

  /** Bytes of per-entry state at the current capacity. */
  get bytes(): number {
    return this.parked.length * 9;
  }

  /** Grows the per-entry arrays to `capacity` entries, keeping their contents. */
  grow(capacity: number): void {
    const l = new Int32Array(capacity);
    l.set(this.lockRef);
    this.lockRef = l;
    const p = new Int32Array(capacity);
    p.set(this.pinRef);
    this.pinRef = p;
    const k = new Uint8Array(capacity);
    k.set(this.parked);
    this.parked = k;
  }

  /** Neither locked nor pinned. */
  isEvictable(id: number): boolean {
    return this.lockRef[id] === 0 && this.pinRef[id] === 0;
  }

  /** Clears `id`'s state for a fresh or reused slot: no references, not parked. */
  reset(id: number): void {
    this.lockRef[id] = 0;
    this.pinRef[id] = 0;
    this.parked[id] = 0;
  }

  /**
   * A new entry (a {@link reset} slot) that starts with `from`'s references (a radix split):
   * `insert` puts it in the policy when unprotected; otherwise it is parked until released.
   */
  addLike(id: number, from: number, insert: () => void): void {
    this.lockRef[id] = this.lockRef[from] as number;
    this.pinRef[id] = this.pinRef[from] as number;
    if (this.isEvictable(id)) insert();
    else this.parked[id] = 1;
  }

  /** An access of `id` (protected or not): touches it unless parked. */
  touch(id: number, info: EvictionEntryInfo): void {
    if (this.parked[id] === 0) this.policy.touch(id, info);
  }

  /**
   * One more reference in `refs` (this tracker's `lockRef` or `pinRef`) on `id`.
   * @returns true when `id` was evictable before (its pages stop counting as evictable).
   */
  protect(id: number, refs: Int32Array): boolean {
    const was = this.isEvictable(id);
    refs[id] = (refs[id] as number) + 1;
    return was;
  }

  /**
   * One reference fewer in `refs` on `id` (the caller checked there is one).
   * @returns true when `id` became evictable (it is then most recently used in the policy).
   */
  release(id: number, refs: Int32Array, info: EvictionEntryInfo): boolean {
    refs[id] = (refs[id] as number) - 1;
    if (!this.isEvictable(id)) return false;
    if (this.parked[id] === 1) {
      try {
        this.policy.insert(id, info);
      } catch (e) {
        // the policy refused it (e.g. ARC at capacity): the reference stays, `id` stays parked
        refs[id] = (refs[id] as number) + 1;
        throw e;
      }
      this.parked[id] = 0;
    } else this.policy.touch(id, info);
    return true;
  }

  /**
   * The policy's next evictable victim, parking protected ones and dropping ids that are no
   * longer entries (`live` false) on the way; -1 when the policy has none.
   */
  victim(live: (id: number) => boolean): number {
    for (;;) {
      const v = this.policy.victim();
      if (v < 0) return -1;
      if (!live(v)) {
        this.policy.remove(v); // a policy that kept a stale key
        continue;
      }
      if (this.isEvictable(v)) return v;
      this.policy.remove(v);
      this.parked[v] = 1;
    }
  }

  /** Entry `id` is gone: out of the policy. */
  remove(id: number): void {
    this.policy.remove(id);
    this.parked[id] = 0;
  }

  /** Forgets every entry (slots are {@link reset} when reused). */
  clear(): void {
    this.policy.clear();
  }

  /** Why `id`'s tracking is inconsistent (an evictable entry must be tracked; a protected one tracked or parked, not both), or undefined. */
  inconsistency(id: number): string | undefined {
    const has = this.policy.has(id);
    if (this.isEvictable(id)) return has && this.parked[id] === 0 ? undefined : `evictable node ${id} not tracked by the policy`;
    return has === (this.parked[id] === 1) ? `protected node ${id} must be either tracked or parked (tracked ${has}, parked ${this.parked[id]})` : undefined;
  }
}
