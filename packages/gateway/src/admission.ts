/**
 * Admission control at the gateway: ADMIT when some endpoint has free KV for the request's
 * predicted footprint, DEFER into a bounded queue otherwise, REJECT (429) when the queue is full
 * or a deferred request waited too long.
 *
 * The queue is ordered by SLO class (critical first), then priority (larger first), then
 * deadline (arrival + TTFT SLO, earliest first), then arrival. It is released strictly in that
 * order whenever KV may have freed (a request finished, a scrape arrived): the head is placed if
 * it fits, and release stops at the first request that does not — so a large request at the
 * head is never starved by smaller ones behind it. Placement (routing and reserving KV on the
 * chosen endpoint) happens synchronously inside the release loop, so two released requests
 * never count the same free KV.
 */
import type { SloClass } from '@kvmgr/core';
import { KvmgrError } from '@kvmgr/core';

const CLASS_RANK: Readonly<Record<SloClass, number>> = { critical: 0, standard: 1, batch: 2, background: 3 };

/** Why a request was not admitted. */
export type RejectReason = 'queue_full' | 'wait_timeout' | 'closed';

/** A request refused by admission: `KvmgrError` `KVMGR_UNAVAILABLE` with `reason` (also in `details`). */
export class AdmissionRejected extends KvmgrError {
  readonly reason: RejectReason;
  constructor(reason: RejectReason, message: string) {
    super('KVMGR_UNAVAILABLE', message, { details: { reason } });
    this.reason = reason;
  }
}

/** The ordering fields of a request. */
export interface AdmissionTicket {
  readonly sloClass: SloClass;
  /** Larger = more important. */
  readonly priority: number;
  /** Deadline, ms since the epoch (Infinity without a TTFT SLO). */
  readonly deadlineMs: number;
}

interface Waiter<T> {
  readonly ticket: AdmissionTicket;
  readonly seq: number;
  readonly place: () => T | undefined;
  readonly resolve: (v: T) => void;
  readonly reject: (e: Error) => void;
  timer: NodeJS.Timeout | undefined;
}

/** Counters of an {@link AdmissionQueue}. */
export interface AdmissionStats {
  admitted: number;
  deferred: number;
  rejected: number;
}

function before(a: Waiter<unknown>, b: Waiter<unknown>): boolean {
  const ca = CLASS_RANK[a.ticket.sloClass];
  const cb = CLASS_RANK[b.ticket.sloClass];
  if (ca !== cb) return ca < cb;
  if (a.ticket.priority !== b.ticket.priority) return a.ticket.priority > b.ticket.priority;
  if (a.ticket.deadlineMs !== b.ticket.deadlineMs) return a.ticket.deadlineMs < b.ticket.deadlineMs;
  return a.seq < b.seq;
}

/**
 * The DEFER queue. `T` is whatever a successful placement returns (the routing decision).
 */
export class AdmissionQueue<T> {
  readonly maxQueue: number;
  readonly maxWaitMs: number;
  readonly stats: AdmissionStats = { admitted: 0, deferred: 0, rejected: 0 };
  private readonly waiting: Waiter<T>[] = [];
  private seq = 0;
  private closed = false;

  /**
   * @param maxQueue - requests held at most (0 = never defer). @default 256 (from config)
   * @param maxWaitMs - longest wait before a 429, ms.
   */
  constructor(maxQueue: number, maxWaitMs: number) {
    this.maxQueue = maxQueue;
    this.maxWaitMs = maxWaitMs;
  }

  /** Requests deferred now. */
  get depth(): number {
    return this.waiting.length;
  }

  /**
   * Admits a request: `place()` is tried at once when nobody waits ahead of it (ADMIT), else
   * the request waits in order (DEFER) until `place()` succeeds during a {@link release}.
   *
   * @param ticket - ordering fields.
   * @param place - routes and reserves KV; returns undefined when nothing fits now. Called
   *   synchronously; it must not throw.
   * @returns the placement, and whether it was deferred.
   * @throws AdmissionRejected `queue_full` when the queue is full, `wait_timeout` after
   *   `maxWaitMs`, `closed` when the gateway shuts down.
   */
  async admit(ticket: AdmissionTicket, place: () => T | undefined): Promise<{ value: T; deferred: boolean }> {
    if (this.closed) throw new AdmissionRejected('closed', 'gateway is shutting down');
    if (this.waiting.length === 0) {
      const v = place();
      if (v !== undefined) {
        this.stats.admitted++;
        return { value: v, deferred: false };
      }
    }
    if (this.waiting.length >= this.maxQueue) {
      this.stats.rejected++;
      throw new AdmissionRejected('queue_full', `not enough free KV cache in the pool and the admission queue is full (${this.maxQueue} waiting)`);
    }
    this.stats.deferred++;
    const value = await new Promise<T>((resolve, reject) => {
      const w: Waiter<T> = { ticket, seq: this.seq++, place, resolve, reject, timer: undefined };
      let i = this.waiting.length;
      while (i > 0 && before(w as Waiter<unknown>, this.waiting[i - 1] as Waiter<unknown>)) i--;
      this.waiting.splice(i, 0, w);
      w.timer = setTimeout(() => {
        const at = this.waiting.indexOf(w);
        if (at < 0) return;
        this.waiting.splice(at, 1);
        this.stats.rejected++;
        reject(new AdmissionRejected('wait_timeout', `no KV cache freed for this request within ${this.maxWaitMs} ms`));
        this.release();
      }, this.maxWaitMs);
      w.timer.unref();
    });
    this.stats.admitted++;
    return { value, deferred: true };
  }

  /** Places waiting requests in order while they fit; stops at the first that does not. */
  release(): void {
    while (this.waiting.length > 0) {
      const w = this.waiting[0] as Waiter<T>;
      const v = w.place();
      if (v === undefined) return;
      this.waiting.shift();
      clearTimeout(w.timer);
      w.resolve(v);
    }
  }

  /** Rejects everything waiting. */
  close(): void {
    this.closed = true;
    for (const w of this.waiting.splice(0)) {
      clearTimeout(w.timer);
      w.reject(new AdmissionRejected('closed', 'gateway is shutting down'));
    }
  }
}
