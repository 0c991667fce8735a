/**
 * Indexed binary min-heap over slot numbers, ordered by `prio[slot]` then `tie[slot]`.
 * Supports update and removal of any slot in O(log n). Internal.
 */

/** @internal */
export class SlotHeap {
  prio: Float64Array;
  tie: Float64Array;
  private heap: Int32Array;
  private pos: Int32Array;
  n = 0;

  constructor(cap: number) {
    this.prio = new Float64Array(cap);
    this.tie = new Float64Array(cap);
    this.heap = new Int32Array(cap);
    this.pos = new Int32Array(cap).fill(-1);
  }

  grow(newCap: number): void {
    const f = (a: Float64Array): Float64Array => {
      const b = new Float64Array(newCap);
      b.set(a);
      return b;
    };
    this.prio = f(this.prio);
    this.tie = f(this.tie);
    const h = new Int32Array(newCap);
    h.set(this.heap);
    this.heap = h;
    const p = new Int32Array(newCap).fill(-1);
    p.set(this.pos);
    this.pos = p;
  }

  /** Slot with the smallest priority, or -1. */
  top(): number {
    return this.n === 0 ? -1 : (this.heap[0] as number);
  }

  contains(s: number): boolean {
    return (this.pos[s] as number) >= 0;
  }

  private less(a: number, b: number): boolean {
    const pa = this.prio[a] as number;
    const pb = this.prio[b] as number;
    return pa < pb || (pa === pb && (this.tie[a] as number) < (this.tie[b] as number));
  }

  push(s: number): void {
    const i = this.n++;
    this.heap[i] = s;
    this.pos[s] = i;
    this.up(i);
  }

  /** Restores order after `prio`/`tie` of `s` changed. */
  update(s: number): void {
    const i = this.pos[s] as number;
    this.up(i);
    this.down(this.pos[s] as number);
  }

  delete(s: number): void {
    const i = this.pos[s] as number;
    if (i < 0) return;
    const last = this.heap[--this.n] as number;
    this.pos[s] = -1;
    if (i === this.n) return;
    this.heap[i] = last;
    this.pos[last] = i;
    this.up(i);
    this.down(this.pos[last] as number);
  }

  clear(): void {
    for (let i = 0; i < this.n; i++) this.pos[this.heap[i] as number] = -1;
    this.n = 0;
  }

  private up(i: number): void {
    const heap = this.heap;
    const s = heap[i] as number;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const ps = heap[p] as number;
      if (!this.less(s, ps)) break;
      heap[i] = ps;
      this.pos[ps] = i;
      i = p;
    }
    heap[i] = s;
    this.pos[s] = i;
  }

  private down(i: number): void {
    const heap = this.heap;
    const n = this.n;
    const s = heap[i] as number;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      const r = c + 1;
      if (r < n && this.less(heap[r] as number, heap[c] as number)) c = r;
      const cs = heap[c] as number;
      if (!this.less(cs, s)) break;
      heap[i] = cs;
      this.pos[cs] = i;
      i = c;
    }
    heap[i] = s;
    this.pos[s] = i;
  }
}
