/**
 * Open-addressing map from a 64-bit hash (two u32 halves) to a non-negative int32 value, on typed
 * arrays, with linear probing and backward-shift deletion. Keys are already well mixed block
 * hashes, so the low half picks the home slot. One u64 map for every package that keys by block
 * key (`@kvmgr/prefix-cache`'s block-hash index, `@kvmgr/kv-pool`'s lower tiers): exact (both
 * halves compared), no bigint on the hot path.
 *
 * @example
 * ```ts
 * const t = new HashTable64(1024);
 * t.set(0xdeadbeef, 0x12345678, 7);
 * t.get(0xdeadbeef, 0x12345678); // 7
 * t.get(0, 0);                   // -1
 * ```
 */
export class HashTable64 {
  private his: Uint32Array;
  private los: Uint32Array;
  private vals: Int32Array;
  private mask: number;
  private used = 0;

  /** @param initialCapacity - entries held before the first resize (it doubles when half full). @default 1024 */
  constructor(initialCapacity = 1024) {
    let cap = 16;
    while (cap < initialCapacity * 2) cap *= 2;
    this.his = new Uint32Array(cap);
    this.los = new Uint32Array(cap);
    this.vals = new Int32Array(cap).fill(-1);
    this.mask = cap - 1;
  }

  /** Number of entries. */
  get size(): number {
    return this.used;
  }

  /** Bytes held by the arrays. */
  get bytes(): number {
    return this.vals.length * 12;
  }

  /** Value stored for (hi, lo); -1 when absent. */
  get(hi: number, lo: number): number {
    const mask = this.mask;
    let i = (lo ^ (hi >>> 7)) & mask;
    for (;;) {
      const v = this.vals[i] as number;
      if (v === -1 || (this.los[i] === lo && this.his[i] === hi)) return v;
      i = (i + 1) & mask;
    }
  }

  /** Sets (hi, lo) → value (replaces an existing value). */
  set(hi: number, lo: number, value: number): void {
    if ((this.used + 1) * 2 > this.vals.length) this.resize(this.vals.length * 2);
    const mask = this.mask;
    let i = (lo ^ (hi >>> 7)) & mask;
    for (;;) {
      const v = this.vals[i] as number;
      if (v === -1) {
        this.used++;
        break;
      }
      if (this.los[i] === lo && this.his[i] === hi) break;
      i = (i + 1) & mask;
    }
    this.his[i] = hi;
    this.los[i] = lo;
    this.vals[i] = value;
  }

  /** Removes (hi, lo); no-op when absent. */
  delete(hi: number, lo: number): void {
    const mask = this.mask;
    let i = (lo ^ (hi >>> 7)) & mask;
    for (;;) {
      const v = this.vals[i] as number;
      if (v === -1) return;
      if (this.los[i] === lo && this.his[i] === hi) break;
      i = (i + 1) & mask;
    }
    let hole = i;
    let j = (i + 1) & mask;
    for (;;) {
      const v = this.vals[j] as number;
      if (v === -1) break;
      const home = ((this.los[j] as number) ^ ((this.his[j] as number) >>> 7)) & mask;
      if (((j - home) & mask) >= ((j - hole) & mask)) {
        this.his[hole] = this.his[j] as number;
        this.los[hole] = this.los[j] as number;
        this.vals[hole] = v;
        hole = j;
      }
      j = (j + 1) & mask;
    }
    this.vals[hole] = -1;
    this.used--;
  }

  private resize(cap: number): void {
    const oh = this.his;
    const ol = this.los;
    const ov = this.vals;
    this.his = new Uint32Array(cap);
    this.los = new Uint32Array(cap);
    this.vals = new Int32Array(cap).fill(-1);
    this.mask = cap - 1;
    this.used = 0;
    for (let i = 0; i < ov.length; i++) if ((ov[i] as number) !== -1) this.set(oh[i] as number, ol[i] as number, ov[i] as number);
  }

  /** Removes every entry. */
  clear(): void {
    this.vals.fill(-1);
    this.used = 0;
  }
}
