/**
 * A binary min-heap of simulator events on typed arrays, ordered by (time, insertion sequence)
 * so that equal times pop in insertion order (determinism).
 */

/** Event kind: a routed request reaches its instance's queue (after the queueing delay). */
export const EV_ENQUEUE = 0;
/** Event kind: an instance's running step ends. */
export const EV_STEP_END = 1;
/** Event kind: the next turn of a multi-turn session arrives (previous answer + think time). */
export const EV_SESSION_ARRIVAL = 2;
/** Event kind: take a time-series sample of every instance. */
export const EV_SAMPLE = 3;
/** Event kind: an idle instance whose queued requests wait for prefetched KV tries to step again. */
export const EV_WAKE = 4;

/** The event heap. */
export class EventQueue {
  private time = new Float64Array(1024);
  private seq = new Float64Array(1024);
  private kind = new Int32Array(1024);
  private a = new Int32Array(1024);
  private b = new Int32Array(1024);
  private n = 0;
  private counter = 0;
  /** Events pushed in total. */
  pushed = 0;

  get size(): number {
    return this.n;
  }

  private grow(): void {
    const cap = this.time.length * 2;
    const t = new Float64Array(cap);
    t.set(this.time);
    this.time = t;
    const s = new Float64Array(cap);
    s.set(this.seq);
    this.seq = s;
    const k = new Int32Array(cap);
    k.set(this.kind);
    this.kind = k;
    const a = new Int32Array(cap);
    a.set(this.a);
    this.a = a;
    const b = new Int32Array(cap);
    b.set(this.b);
    this.b = b;
  }

  private less(i: number, j: number): boolean {
    const ti = this.time[i] as number;
    const tj = this.time[j] as number;
    return ti < tj || (ti === tj && (this.seq[i] as number) < (this.seq[j] as number));
  }

  private swap(i: number, j: number): void {
    const t = this.time[i] as number;
    this.time[i] = this.time[j] as number;
    this.time[j] = t;
    const s = this.seq[i] as number;
    this.seq[i] = this.seq[j] as number;
    this.seq[j] = s;
    const k = this.kind[i] as number;
    this.kind[i] = this.kind[j] as number;
    this.kind[j] = k;
    const a = this.a[i] as number;
    this.a[i] = this.a[j] as number;
    this.a[j] = a;
    const b = this.b[i] as number;
    this.b[i] = this.b[j] as number;
    this.b[j] = b;
  }

  /** Adds an event at `timeUs` with two integer payloads. */
  push(timeUs: number, kind: number, a: number, b: number): void {
    if (this.n === this.time.length) this.grow();
    let i = this.n++;
    this.time[i] = timeUs;
    this.seq[i] = this.counter++;
    this.kind[i] = kind;
    this.a[i] = a;
    this.b[i] = b;
    this.pushed++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }

  /** Time of the next event (Infinity when empty). */
  peekTime(): number {
    return this.n === 0 ? Number.POSITIVE_INFINITY : (this.time[0] as number);
  }

  /** Removes the next event into `out` = [time, kind, a, b]. */
  pop(out: Float64Array): void {
    out[0] = this.time[0] as number;
    out[1] = this.kind[0] as number;
    out[2] = this.a[0] as number;
    out[3] = this.b[0] as number;
    const last = --this.n;
    if (last > 0) {
      this.time[0] = this.time[last] as number;
      this.seq[0] = this.seq[last] as number;
      this.kind[0] = this.kind[last] as number;
      this.a[0] = this.a[last] as number;
      this.b[0] = this.b[last] as number;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < last && this.less(l, m)) m = l;
        if (r < last && this.less(r, m)) m = r;
        if (m === i) break;
        this.swap(i, m);
        i = m;
      }
    }
  }
}
