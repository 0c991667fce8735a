/**
 * Admission control at the gateway: ADMIT when some endpoint has free KV for the request's
 * predicted footprint, DEFER into a bounded queue otherwise, REJECT (429) when the queue is full,
 * when the request cannot start in time for its TTFT SLO, or when it waited too long.
 *
 * The queue is ordered by SLO class (critical first), then priority (larger first), then
 * deadline (arrival + TTFT SLO, earliest first), then arrival. It is released strictly in that
 * order whenever KV may have freed (a request finished, a scrape arrived): the head is placed if
 * it fits, and release stops at the first request that does not — so a large request at the
 * head is never starved by smaller ones behind it. When the queue is standing (its head has
 * used more than half of its time to be placed), release takes the newest request of the head's
 * SLO class and priority instead of the oldest (adaptive LIFO). With {@link AdmissionOptions.fairness},
 * release takes, within the head's SLO class and priority, a request of the tenant that has
 * received the least service (VTC), by the same rule among that tenant's requests. Placement (routing and reserving KV on the
 * chosen endpoint) happens synchronously inside the release loop, so two released requests
 * never count the same free KV. A deferred request whose client goes away leaves the queue at
 * once ({@link LeaveWatch}): it is never placed, and the queue is released again, since it may
 * have been the head that held the others back.
 *
 * Deadlines: a request with a TTFT SLO must be placed by its *place-by* time, the deadline less
 * the predicted TTFT once placed ({@link ServiceModel.ttftBoundMs}); a request without one by
 * arrival + `maxWaitMs`. A deferred request still waiting at its place-by time is refused then
 * (it could only miss its SLO and hold KV that a request which can still make it needs). At the
 * door, a request with a TTFT SLO is refused at once instead of queued when the requests queued
 * ahead of it are predicted to take longer than its place-by time to be placed — the KV they
 * reserve over the fleet's drain rate ({@link ServiceModel.drainMs}). This is the SLO-aware early rejection of
 * serving gateways (reject what cannot meet its SLO, so that what is admitted does), with
 * deadline-aware dropping in the queue as in CoDel's "drop what has waited too long".
 *
 * @see K. Nichols, V. Jacobson, "Controlling Queue Delay", ACM Queue 10(5), 2012 (CoDel).
 */
import type { SloClass } from '@kvmgr/core';
import { KvmgrError } from '@kvmgr/core';
import { ServiceModel } from './service-model.js';

const CLASS_RANK: Readonly<Record<SloClass, number>> = { critical: 0, standard: 1, batch: 2, background: 3 };

/**
 * Why a request was not admitted: `queue_full` (the DEFER queue holds `maxQueue`), `deadline`
 * (it cannot be placed in time for its TTFT SLO: predicted at the door, or its place-by time
 * passed in the queue), `wait_timeout` (no TTFT SLO, and no KV freed for it within `maxWaitMs`),
 * `closed` (the gateway shuts down).
 */
export type RejectReason = 'queue_full' | 'deadline' | 'wait_timeout' | 'closed';

/** A request refused by admission: `KvmgrError` `KVMGR_UNAVAILABLE` with `reason` (also in `details`). */
export class AdmissionRejected extends KvmgrError {
  readonly reason: RejectReason;
  /** Predicted ms until the queue ahead has drained (a hint for `Retry-After`); undefined when unknown. */
  readonly retryAfterMs: number | undefined;
  constructor(reason: RejectReason, message: string, retryAfterMs?: number) {
    super('KVMGR_UNAVAILABLE', message, { details: { reason } });
    this.reason = reason;
    this.retryAfterMs = retryAfterMs;
  }
}

/**
 * A deferred request whose client went away: it left the queue at once, was never placed and
 * reserved nothing. `KvmgrError` `KVMGR_UNAVAILABLE` with `reason: 'abandoned'` in `details`.
 */
export class AdmissionAbandoned extends KvmgrError {
  /** How long it waited in the queue, ms. */
  readonly waitedMs: number;
  constructor(waitedMs: number) {
    super('KVMGR_UNAVAILABLE', `the client went away after ${Math.round(waitedMs)} ms in the admission queue`, { details: { reason: 'abandoned' } });
    this.waitedMs = waitedMs;
  }
}

/**
 * Called once when a request is deferred (never on the ADMIT path): subscribe `leave` to the
 * client going away, and return what unsubscribes it. `leave` may be called at once (the
 * client is gone already), or later; after the request left the queue it does nothing.
 */
export type LeaveWatch = (leave: () => void) => () => void;

/** A {@link LeaveWatch} on an `AbortSignal`: the request leaves the queue when the signal aborts. */
export function leaveOnAbort(signal: AbortSignal): LeaveWatch {
  return (leave) => {
    if (signal.aborted) {
      leave();
      return () => undefined;
    }
    signal.addEventListener('abort', leave, { once: true });
    return () => signal.removeEventListener('abort', leave);
  };
}

/** The ordering fields of a request. */
export interface AdmissionTicket {
  readonly sloClass: SloClass;
  /** Larger = more important. */
  readonly priority: number;
  /** Deadline of the first token, ms since the epoch (arrival + TTFT SLO; Infinity without one). */
  readonly deadlineMs: number;
  /** KV tokens the request reserves once placed (prompt + max output): its share of the predicted wait. @default 0 */
  readonly footprintTokens?: number;
  /** Who the request belongs to, for {@link AdmissionFairness}. @default '' */
  readonly tenant?: string;
}

/**
 * Per-tenant fairness of the DEFER queue (`tenants.ts` implements it with VTC): within one SLO
 * class and priority, the waiter of the tenant with the smallest `counter` is released first.
 */
export interface AdmissionFairness {
  /** Service received so far (smaller = released first). */
  counter(tenant: string): number;
  /** A request of `tenant` entered the queue. */
  enqueued(tenant: string): void;
  /** A request of `tenant` left the queue (placed or refused). */
  dequeued(tenant: string): void;
}

/** Options of an {@link AdmissionQueue}. */
export interface AdmissionOptions {
  /**
   * KV tokens reserved by the requests in flight now, over the pool (the numerator of the
   * drain rate). Without it no wait is predicted and only deadlines are enforced. @default none
   */
  readonly inFlightTokens?: () => number;
  /** The latency and drain-rate estimates, fed by the server. @default a new {@link ServiceModel} */
  readonly model?: ServiceModel;
  /** Release order among tenants within an SLO class and priority. @default none (deadline order) */
  readonly fairness?: AdmissionFairness;
}

interface Waiter<T> {
  readonly ticket: AdmissionTicket;
  readonly seq: number;
  readonly place: () => T | undefined;
  readonly resolve: (v: T) => void;
  readonly reject: (e: Error) => void;
  readonly tokens: number;
  /** When it was deferred, ms since the epoch. */
  readonly sinceMs: number;
  /** Latest time to place it, ms since the epoch. */
  readonly placeBy: number;
  /** Whether `placeBy` comes from its TTFT deadline (else from `maxWaitMs`). */
  readonly bySlo: boolean;
  timer: NodeJS.Timeout | undefined;
  /** Unsubscribes the client-disconnect watch ({@link LeaveWatch}), when there is one. */
  unwatch: (() => void) | undefined;
}

/** Counters of an {@link AdmissionQueue}. */
export interface AdmissionStats {
  admitted: number;
  deferred: number;
  rejected: number;
  /** Deferred requests whose client went away while they waited (never placed). */
  abandoned: number;
}

/** Whether `a` and `b` are in the same SLO class and priority (the order among them is by deadline). */
function sameGroup(a: Waiter<unknown>, b: Waiter<unknown>): boolean {
  return a.ticket.sloClass === b.ticket.sloClass && a.ticket.priority === b.ticket.priority;
}

function before(a: Waiter<unknown>, b: Waiter<unknown>): boolean {
  const ca = CLASS_RANK[a.ticket.sloClass];
  const cb = CLASS_RANK[b.ticket.sloClass];
  if (ca !== cb) return ca < cb;
  if (a.ticket.priority !== b.ticket.priority) return a.ticket.priority > b.ticket.priority;
  if (a.ticket.deadlineMs !== b.ticket.deadlineMs) return a.ticket.deadlineMs < b.ticket.deadlineMs;
  return a.seq < b.seq;
}

/** Whether a waiter has used more than half of its time to be placed (the queue is standing, not absorbing a burst). */
function congestedAt(w: Waiter<unknown>, nowMs: number): boolean {
  return nowMs - w.sinceMs > (w.placeBy - w.sinceMs) / 2;
}

/**
 * The DEFER queue. `T` is whatever a successful placement returns (the routing decision).
 */
export class AdmissionQueue<T> {
  readonly maxQueue: number;
  readonly maxWaitMs: number;
  readonly stats: AdmissionStats = { admitted: 0, deferred: 0, rejected: 0, abandoned: 0 };
  /** What deadlines and waits are predicted from; the server records its requests' TTFT and service time here. */
  readonly model: ServiceModel;
  private readonly inFlightTokens: (() => number) | undefined;
  private readonly fairness: AdmissionFairness | undefined;
  private readonly waiting: Waiter<T>[] = [];
  private seq = 0;
  private closed = false;

  /**
   * @param maxQueue - requests held at most (0 = never defer). @default 256 (from config)
   * @param maxWaitMs - longest wait before a 429 for a request without a TTFT SLO, ms. @default 30000 (from config)
   * @param options - see {@link AdmissionOptions}.
   */
  constructor(maxQueue: number, maxWaitMs: number, options: AdmissionOptions = {}) {
    this.maxQueue = maxQueue;
    this.maxWaitMs = maxWaitMs;
    this.model = options.model ?? new ServiceModel();
    this.inFlightTokens = options.inFlightTokens;
    this.fairness = options.fairness;
  }

  /** Requests deferred now. */
  get depth(): number {
    return this.waiting.length;
  }

  /** KV tokens the deferred requests will reserve once placed. */
  get queuedTokens(): number {
    let s = 0;
    for (const w of this.waiting) s += w.tokens;
    return s;
  }

  /** Predicted ms until `tokens` KV tokens have freed; undefined when nothing is known yet. */
  private drainMs(tokens: number): number | undefined {
    return this.inFlightTokens === undefined ? undefined : this.model.drainMs(tokens, this.inFlightTokens());
  }

  /**
   * Admits a request: `place()` is tried at once when nobody waits ahead of it (ADMIT), else
   * the request waits in order (DEFER) until `place()` succeeds during a {@link release}, or is
   * refused (REJECT) as the class documentation says.
   *
   * @param ticket - ordering fields, deadline and KV footprint.
   * @param place - routes and reserves KV; returns undefined when nothing fits now. Called
   *   synchronously; it must not throw.
   * @param watch - called when the request is deferred, to take it out of the queue at once when
   *   its client goes away (see {@link LeaveWatch}): it is then never placed, and the queue is
   *   released again (it may have held the head). @default none (it waits until placed or refused)
   * @returns the placement, and whether it was deferred.
   * @throws AdmissionRejected `queue_full` when the queue is full; `deadline` when the request
   *   cannot be placed before its deadline less the predicted TTFT once placed (at the door, or
   *   when that time comes in the queue); `wait_timeout` after `maxWaitMs` for a request without
   *   a deadline; `closed` when the gateway shuts down. `retryAfterMs` carries the predicted
   *   drain time of the queue when known.
   * @throws AdmissionAbandoned when `watch` says the client went away while it was deferred.
   */
  async admit(ticket: AdmissionTicket, place: () => T | undefined, watch?: LeaveWatch): Promise<{ value: T; deferred: boolean }> {
    if (this.closed) throw new AdmissionRejected('closed', 'gateway is shutting down');
    if (this.waiting.length === 0) {
      const v = place();
      if (v !== undefined) {
        this.stats.admitted++;
        return { value: v, deferred: false };
      }
    }
    const now = Date.now();
    const tokens = Math.max(0, ticket.footprintTokens ?? 0);
    const sloBound = ticket.deadlineMs - this.model.ttftBoundMs();
    const bySlo = sloBound < now + this.maxWaitMs;
    const placeBy = bySlo ? sloBound : now + this.maxWaitMs;
    const w: Waiter<T> = { ticket, seq: this.seq++, place, resolve: () => undefined, reject: () => undefined, tokens, sinceMs: now, placeBy, bySlo, timer: undefined, unwatch: undefined };
    let at = this.waiting.length;
    while (at > 0 && before(w as Waiter<unknown>, this.waiting[at - 1] as Waiter<unknown>)) at--;
    if (this.waiting.length >= this.maxQueue) {
      this.stats.rejected++;
      throw new AdmissionRejected(
        'queue_full',
        `not enough free KV cache in the pool and the admission queue is full (${this.maxQueue} waiting)`,
        this.drainMs(this.queuedTokens + tokens),
      );
    }
    if (bySlo) {
      // Only the requests placed before it count: a request with nothing ahead is the next to go
      // when KV frees, and refusing it would leave that KV idle until the next arrival. Congested,
      // the newest of the head's group goes first, so only higher groups are ahead of it.
      const lifo = this.congested(now);
      let ahead = 0;
      for (let i = 0; i < at; i++) {
        const o = this.waiting[i] as Waiter<T>;
        if (!lifo || !sameGroup(o as Waiter<unknown>, w as Waiter<unknown>)) ahead += o.tokens;
      }
      const waitMs = this.drainMs(ahead);
      if (placeBy <= now || (waitMs !== undefined && now + waitMs > placeBy)) {
        this.stats.rejected++;
        const budget = Math.round(placeBy - now);
        throw new AdmissionRejected(
          'deadline',
          `this request cannot start within its TTFT SLO: predicted wait for the ${ahead} KV tokens queued ahead of it ${waitMs === undefined ? 'unknown' : `${Math.round(waitMs)} ms`}, ${budget > 0 ? `${budget} ms` : 'no time'} left to place it (TTFT once placed ≈ ${Math.round(this.model.ttftBoundMs())} ms)`,
          this.drainMs(this.queuedTokens + tokens),
        );
      }
    }
    this.stats.deferred++;
    const value = await new Promise<T>((resolve, reject) => {
      // every way out of the queue resolves or rejects exactly once: the tenant's backlog follows
      const fair = this.fairness;
      const tenant = ticket.tenant ?? '';
      fair?.enqueued(tenant);
      const waiter: Waiter<T> =
        fair === undefined
          ? { ...w, resolve, reject }
          : {
              ...w,
              resolve: (v) => {
                fair.dequeued(tenant);
                resolve(v);
              },
              reject: (e) => {
                fair.dequeued(tenant);
                reject(e);
              },
            };
      this.waiting.splice(at, 0, waiter);
      waiter.timer = setTimeout(
        () => {
          const i = this.waiting.indexOf(waiter);
          if (i < 0) return;
          this.waiting.splice(i, 1);
          this.expire(waiter);
          this.release();
        },
        Math.max(0, placeBy - now),
      );
      waiter.timer.unref();
      if (watch !== undefined) {
        // the client went away: out of the queue now, never placed; what waited behind it may fit
        const unwatch = watch(() => {
          const i = this.waiting.indexOf(waiter);
          if (i < 0) return;
          this.waiting.splice(i, 1);
          this.settled(waiter);
          this.stats.abandoned++;
          waiter.reject(new AdmissionAbandoned(Date.now() - waiter.sinceMs));
          this.release();
        });
        // it may have left inside `watch` already
        if (this.waiting.includes(waiter)) waiter.unwatch = unwatch;
        else unwatch();
      }
    });
    this.stats.admitted++;
    return { value, deferred: true };
  }

  /** A waiter left the queue: its timer and client watch end. */
  private settled(w: Waiter<T>): void {
    clearTimeout(w.timer);
    w.unwatch?.();
    w.unwatch = undefined;
  }

  /** Rejects a waiter taken out of the queue at its place-by time. */
  private expire(w: Waiter<T>): void {
    this.settled(w);
    this.stats.rejected++;
    const retry = this.drainMs(this.queuedTokens + w.tokens);
    w.reject(
      w.bySlo
        ? new AdmissionRejected('deadline', 'no KV cache freed for this request in time for its TTFT SLO', retry)
        : new AdmissionRejected('wait_timeout', `no KV cache freed for this request within ${this.maxWaitMs} ms`, retry),
    );
  }

  /**
   * Places waiting requests in order while they fit; stops at the first that does not. A request
   * whose place-by time has passed is refused instead of placed (its timer may not have fired
   * yet when the event loop runs late).
   */
  release(): void {
    while (this.waiting.length > 0) {
      const now = Date.now();
      const head = this.waiting[0] as Waiter<T>;
      if (now >= head.placeBy) {
        this.waiting.shift();
        this.expire(head);
        continue;
      }
      const at = this.next(now);
      const w = this.waiting[at] as Waiter<T>;
      const v = w.place();
      if (v === undefined) return;
      this.waiting.splice(at, 1);
      this.settled(w);
      w.resolve(v);
    }
  }

  /** Whether the queue is standing: its head has used more than half of its time to be placed. */
  private congested(nowMs: number): boolean {
    const head = this.waiting[0];
    return head !== undefined && congestedAt(head as Waiter<unknown>, nowMs);
  }

  /**
   * Index of the waiter to place next: the head (FIFO by deadline) normally; when the queue is
   * congested, the newest waiter of the head's SLO class and priority (adaptive LIFO, as in
   * Maurer's "Fail at Scale": under a standing queue the oldest requests are the likeliest to
   * miss their deadline anyway, while the newest still have their whole budget).
   *
   * @see B. Maurer, "Fail at Scale", ACM Queue 13(8), 2015 (adaptive LIFO with CoDel).
   */
  private next(nowMs: number): number {
    const lifo = this.congested(nowMs);
    const fair = this.fairness;
    if (!lifo && fair === undefined) return 0;
    const head = this.waiting[0] as Waiter<unknown>;
    let best = 0;
    // with fairness, the tenant with the least service first (VTC), then the rule above among its requests
    let bestCounter = fair === undefined ? 0 : fair.counter(head.ticket.tenant ?? '');
    for (let i = 1; i < this.waiting.length; i++) {
      const w = this.waiting[i] as Waiter<unknown>;
      if (!sameGroup(w, head)) break;
      if (fair !== undefined) {
        const c = fair.counter(w.ticket.tenant ?? '');
        if (c < bestCounter) {
          best = i;
          bestCounter = c;
          continue;
        }
        if (c > bestCounter) continue;
      }
      if (lifo && w.seq > (this.waiting[best] as Waiter<unknown>).seq) best = i;
    }
    return best;
  }

  /** Rejects everything waiting. */
  close(): void {
    this.closed = true;
    for (const w of this.waiting.splice(0)) {
      this.settled(w);
      w.reject(new AdmissionRejected('closed', 'gateway is shutting down'));
    }
  }
}
