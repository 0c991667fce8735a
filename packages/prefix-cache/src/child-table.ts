/**
 * Open-addressing hash table from (parent node, child key) to child node, on typed arrays, with
 * linear probing and backward-shift deletion. One table serves the whole tree, so a node costs
 * no per-node `Map`. Several entries may share (parent, key) when the key is a 32-bit page hash
 * that collides; callers verify the page and continue probing with `findSlot(..., slot + 1)`.
 */
export class ChildTable {
  private parents: Int32Array;
  private keys: Uint32Array;
  private children: Int32Array;
  private mask: number;
  private used = 0;

  constructor(initialCapacity = 1024) {
    let cap = 16;
    while (cap < initialCapacity * 2) cap *= 2;
    this.parents = new Int32Array(cap);
    this.keys = new Uint32Array(cap);
    this.children = new Int32Array(cap).fill(-1);
    this.mask = cap - 1;
  }

  /** Number of entries. */
  get size(): number {
    return this.used;
  }

  /** Bytes held by the table's arrays. */
  get bytes(): number {
    return this.children.length * 12;
  }

  private slotOf(parent: number, key: number): number {
    let h = Math.imul(parent, 0x9e3779b1) ^ key;
    h ^= h >>> 16;
    h = Math.imul(h, 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
    return h & this.mask;
  }

  /**
   * First slot at or after `from` (in probe order from the home slot) holding (parent, key),
   * or -1. Pass `from = -1` to start at the home slot.
   */
  findSlot(parent: number, key: number, from: number): number {
    const mask = this.mask;
    const children = this.children;
    let i = from < 0 ? this.slotOf(parent, key) : from & mask;
    for (;;) {
      const c = children[i] as number;
      if (c === -1) return -1;
      if (this.keys[i] === key && this.parents[i] === parent) return i;
      i = (i + 1) & mask;
    }
  }

  /** Child stored in `slot`. */
  childAt(slot: number): number {
    return this.children[slot] as number;
  }

  /** Replaces the child stored in `slot` (same parent and key). */
  setChildAt(slot: number, child: number): void {
    this.children[slot] = child;
  }

  /** Finds the slot that maps (parent, key) to exactly `child`; -1 when absent. */
  slotOfChild(parent: number, key: number, child: number): number {
    let s = this.findSlot(parent, key, -1);
    while (s >= 0 && this.children[s] !== child) s = this.findSlot(parent, key, s + 1);
    return s;
  }

  /** Adds (parent, key) → child (duplicates of (parent, key) allowed). */
  add(parent: number, key: number, child: number): void {
    if ((this.used + 1) * 2 > this.children.length) this.resize(this.children.length * 2);
    this.place(parent, key, child);
    this.used++;
  }

  private place(parent: number, key: number, child: number): void {
    const mask = this.mask;
    let i = this.slotOf(parent, key);
    while (this.children[i] !== -1) i = (i + 1) & mask;
    this.parents[i] = parent;
    this.keys[i] = key;
    this.children[i] = child;
  }

  /** Removes the entry in `slot` (backward-shift deletion keeps probe chains intact). */
  removeSlot(slot: number): void {
    const mask = this.mask;
    let hole = slot;
    let i = (slot + 1) & mask;
    for (;;) {
      const c = this.children[i] as number;
      if (c === -1) break;
      const home = this.slotOf(this.parents[i] as number, this.keys[i] as number);
      // move entry i into the hole when its home is not in (hole, i] cyclically
      const dist = (i - home) & mask;
      const holeDist = (i - hole) & mask;
      if (dist >= holeDist) {
        this.parents[hole] = this.parents[i] as number;
        this.keys[hole] = this.keys[i] as number;
        this.children[hole] = c;
        hole = i;
      }
      i = (i + 1) & mask;
    }
    this.children[hole] = -1;
    this.used--;
  }

  private resize(cap: number): void {
    const op = this.parents;
    const ok = this.keys;
    const oc = this.children;
    this.parents = new Int32Array(cap);
    this.keys = new Uint32Array(cap);
    this.children = new Int32Array(cap).fill(-1);
    this.mask = cap - 1;
    for (let i = 0; i < oc.length; i++) {
      const c = oc[i] as number;
      if (c !== -1) this.place(op[i] as number, ok[i] as number, c);
    }
  }

  /** Removes every entry. */
  clear(): void {
    this.children.fill(-1);
    this.used = 0;
  }
}
