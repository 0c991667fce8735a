/**
 * A KV-event subscriber for vLLM publishers: one ZMQ SUB socket per publisher endpoint, sequence
 * tracking per (endpoint, DP rank), gap repair through the publisher's replay ROUTER, duplicate
 * and restart detection, and counters for everything it had to drop or could not repair.
 *
 * @see vllm-project/vllm:vllm/distributed/kv_events.py
 * @see ai-dynamo/dynamo: lib/llm/src/kv_router/indexer/recovery (gap recovery by replay)
 */
import type { KvEventBatch } from '@kvmgr/core';
import { KvmgrError, invalidArgument, requirePositiveInt } from '@kvmgr/core';
import { Dealer, Subscriber } from 'zeromq';
import { KvEventDecoder } from './decode.js';
import { requireEndpoint } from './endpoint.js';
import { REPLAY_END_SEQ, decodeSeq, encodeSeq } from './wire.js';

/** Where a batch came from. */
export interface KvEventSource {
  /** The publisher endpoint this subscriber connected to. */
  readonly endpoint: string;
  /** The batch's `data_parallel_rank` (null when the publisher sends none). */
  readonly dpRank: number | null;
  /** Topic frame of the message. */
  readonly topic: string;
}

/** One delivered batch, in seq order per source. */
export interface KvEventDelivery {
  readonly source: KvEventSource;
  /** Sequence number of the batch at its publisher. */
  readonly seq: number;
  readonly batch: KvEventBatch;
  /**
   * True on the synthetic batch `{ events: [{ type: 'AllBlocksCleared' }] }` emitted when the
   * publisher restarted: drop everything this source stored before.
   */
  readonly reset: boolean;
}

/** Logger of a {@link KvEventSubscriber}; only warnings are written. */
export interface KvEventSubscriberLogger {
  warn(message: string, details: Readonly<Record<string, unknown>>): void;
}

/** Options of {@link KvEventSubscriber}. */
export interface KvEventSubscriberOptions {
  /** Publisher endpoints (`tcp://host:5557`, `ipc://…`), one SUB socket each. */
  readonly endpoints: string | readonly string[];
  /**
   * Replay ROUTER endpoint per publisher, index-aligned with `endpoints`; null/absent = no replay
   * for that publisher (gaps are then counted and skipped). @default none
   */
  readonly replayEndpoints?: string | readonly (string | null)[] | null;
  /** Topic prefix filter (ZMQ semantics: `''` = all). @default '' */
  readonly topic?: string;
  /** Called for every delivered batch, in order; without it, iterate the subscriber instead. */
  readonly onBatch?: (delivery: KvEventDelivery) => void;
  /** How long to wait for each replay reply, ms; past it the replay counts as failed. @default 2000 */
  readonly replayTimeoutMs?: number;
  /** Live batches held per source while a replay runs; beyond it they are dropped and counted. @default 10000 */
  readonly maxBufferedBatches?: number;
  /** Batches queued for the async iterator; beyond it they are dropped and counted. @default 100000 */
  readonly maxQueued?: number;
  /** ZMQ receive high-water mark (messages) of each SUB socket. @default 100000 */
  readonly hwm?: number;
  /** Where malformed frames, replay failures and restarts are reported. @default console.warn */
  readonly logger?: KvEventSubscriberLogger;
}

/** Per-endpoint counters. */
export interface KvEventEndpointStats {
  readonly endpoint: string;
  readonly replayEndpoint: string | null;
  /** Messages received on the live stream. */
  readonly received: number;
  /** Frames that could not be decoded (live or replay); each was logged and skipped. */
  readonly malformed: number;
}

/** Per-source state. */
export interface KvEventSourceStats {
  readonly source: KvEventSource;
  /** The next seq expected. */
  readonly nextSeq: number;
  /** True when some batches of this source were lost for good (replay failed or too short). */
  readonly possiblyIncomplete: boolean;
  readonly replaying: boolean;
}

/** Counters of a {@link KvEventSubscriber}; all monotonic. */
export interface KvEventSubscriberStats {
  /** Batches delivered to the consumer (resets included). */
  readonly delivered: number;
  /** Batches whose seq was already applied (at-least-once duplicates, late replay replies). */
  readonly duplicates: number;
  /** Batches dropped because a bound was reached (replay buffer or consumer queue). */
  readonly dropped: number;
  /** Sequence gaps seen on the live stream. */
  readonly gaps: number;
  /** Replays requested (gap repair and late join). */
  readonly replays: number;
  /** Replays that timed out or failed; the source continued from the live stream. */
  readonly replayFailures: number;
  /** Batches known to be missing for good (seqs skipped). */
  readonly lost: number;
  /** Publisher restarts detected (seq went back with a newer timestamp). */
  readonly restarts: number;
  /** Malformed frames, all endpoints. */
  readonly malformed: number;
  readonly endpoints: readonly KvEventEndpointStats[];
  readonly sources: readonly KvEventSourceStats[];
}

interface EndpointState {
  readonly endpoint: string;
  readonly replayEndpoint: string | null;
  readonly sub: Subscriber;
  dealer: Dealer | null;
  replayChain: Promise<void>;
  received: number;
  malformed: number;
}

interface Pending {
  seq: number;
  batch: KvEventBatch;
  topic: string;
}

interface SourceState {
  readonly source: KvEventSource;
  readonly ep: EndpointState;
  /** Next seq expected; -1 = nothing seen yet. */
  next: number;
  lastTs: number;
  replaying: boolean;
  pending: Pending[];
  incomplete: boolean;
}

const EMPTY = Buffer.alloc(0);

function asList<T>(v: T | readonly T[] | null | undefined): readonly T[] {
  if (v == null) return [];
  return Array.isArray(v) ? (v as readonly T[]) : [v as T];
}

const consoleLogger: KvEventSubscriberLogger = {
  warn: (message, details) => console.warn(`kvmgr kv-events: ${message}`, details),
};

/**
 * Subscribes to one or more vLLM KV-event publishers and delivers their batches in order.
 *
 * Per source (endpoint, DP rank): a batch with the next seq is delivered; a seq already applied
 * is a duplicate and dropped; a seq ahead opens a gap, repaired by asking the publisher's replay
 * ROUTER for everything from the missing seq (live batches wait in a bounded buffer meanwhile);
 * the first batch of a source with seq > 0 (late join, slow joiner) replays from 0; a seq going
 * back with a newer timestamp than anything applied is a publisher restart: a reset is delivered
 * (`reset: true`, one `AllBlocksCleared`) and the source starts over. When replay is unavailable
 * or times out, the gap is counted, the source is marked possibly incomplete, and delivery goes on
 * from the live stream. Malformed frames are counted per endpoint and logged, never thrown.
 *
 * @example
 * ```ts
 * const sub = new KvEventSubscriber({ endpoints: 'tcp://10.0.0.5:5557', replayEndpoints: 'tcp://10.0.0.5:5558' });
 * for await (const { source, seq, batch, reset } of sub) index.applyEvents(source.endpoint, batch.events);
 * ```
 * @see vllm-project/vllm:vllm/distributed/kv_events.py
 */
export class KvEventSubscriber implements AsyncIterable<KvEventDelivery> {
  private readonly eps: EndpointState[] = [];
  private readonly sources = new Map<string, SourceState>();
  private readonly decoder = new KvEventDecoder();
  private readonly onBatch: ((d: KvEventDelivery) => void) | undefined;
  private readonly replayTimeoutMs: number;
  private readonly maxBuffered: number;
  private readonly maxQueued: number;
  private readonly logger: KvEventSubscriberLogger;
  private readonly loops: Promise<void>[] = [];
  private readonly queue: KvEventDelivery[] = [];
  private queueHead = 0;
  private wake: (() => void) | null = null;
  private closed = false;
  private readonly c = { delivered: 0, duplicates: 0, dropped: 0, gaps: 0, replays: 0, replayFailures: 0, lost: 0, restarts: 0 };

  /**
   * Opens one SUB socket per endpoint and starts receiving.
   *
   * @param options - see {@link KvEventSubscriberOptions}.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` on no endpoint, a malformed endpoint, more replay
   *   endpoints than endpoints, or a bad bound; `KVMGR_UNAVAILABLE` when ZMQ refuses an endpoint.
   */
  constructor(options: KvEventSubscriberOptions) {
    const endpoints = asList(options.endpoints).map((e, i) => requireEndpoint(`endpoints[${i}]`, e));
    if (endpoints.length === 0) throw invalidArgument('endpoints', options.endpoints, 'at least one endpoint');
    const replays = asList(options.replayEndpoints);
    if (replays.length > endpoints.length) throw invalidArgument('replayEndpoints', options.replayEndpoints, `at most ${endpoints.length} endpoints (one per publisher)`);
    const topic = options.topic ?? '';
    if (typeof topic !== 'string') throw invalidArgument('topic', topic, 'a string');
    this.replayTimeoutMs = requirePositiveInt('replayTimeoutMs', options.replayTimeoutMs ?? 2000);
    this.maxBuffered = requirePositiveInt('maxBufferedBatches', options.maxBufferedBatches ?? 10_000);
    this.maxQueued = requirePositiveInt('maxQueued', options.maxQueued ?? 100_000);
    const hwm = requirePositiveInt('hwm', options.hwm ?? 100_000);
    this.onBatch = options.onBatch;
    this.logger = options.logger ?? consoleLogger;
    try {
      endpoints.forEach((endpoint, i) => {
        const r = replays[i];
        const replayEndpoint = r == null ? null : requireEndpoint(`replayEndpoints[${i}]`, r);
        const sub = new Subscriber({ receiveHighWaterMark: hwm, linger: 0 });
        const ep: EndpointState = { endpoint, replayEndpoint, sub, dealer: null, replayChain: Promise.resolve(), received: 0, malformed: 0 };
        this.eps.push(ep);
        sub.connect(endpoint);
        sub.subscribe(topic);
      });
    } catch (e) {
      for (const ep of this.eps) ep.sub.close();
      if (e instanceof KvmgrError) throw e;
      throw new KvmgrError('KVMGR_UNAVAILABLE', `cannot subscribe to ${endpoints.join(', ')}: ${(e as Error).message}`, { cause: e });
    }
    for (const ep of this.eps) this.loops.push(this.receiveLoop(ep));
  }

  private async receiveLoop(ep: EndpointState): Promise<void> {
    try {
      for await (const frames of ep.sub) {
        if (this.closed) break;
        ep.received++;
        let m: ReturnType<KvEventDecoder['decodeMessage']>;
        try {
          m = this.decoder.decodeMessage(frames);
        } catch (e) {
          this.malformed(ep, 'live', e);
          continue;
        }
        this.onLive(ep, m.topic, m.seq, m.batch);
      }
    } catch (e) {
      if (!this.closed) this.logger.warn('receive loop stopped', { endpoint: ep.endpoint, error: (e as Error).message });
    }
  }

  private malformed(ep: EndpointState, stream: 'live' | 'replay', e: unknown): void {
    ep.malformed++;
    this.logger.warn('malformed frame skipped', { endpoint: ep.endpoint, stream, error: (e as Error).message });
  }

  private sourceOf(ep: EndpointState, dpRank: number | null, topic: string): SourceState {
    const key = `${ep.endpoint}\u0000${dpRank ?? ''}`;
    let s = this.sources.get(key);
    if (s === undefined) {
      s = { source: { endpoint: ep.endpoint, dpRank, topic }, ep, next: -1, lastTs: Number.NEGATIVE_INFINITY, replaying: false, pending: [], incomplete: false };
      this.sources.set(key, s);
    }
    return s;
  }

  private onLive(ep: EndpointState, topic: string, seq: number, batch: KvEventBatch): void {
    const src = this.sourceOf(ep, batch.dataParallelRank ?? null, topic);
    if (src.replaying) {
      if (src.pending.length >= this.maxBuffered) {
        this.c.dropped++;
        src.incomplete = true;
      } else {
        src.pending.push({ seq, batch, topic });
      }
      return;
    }
    this.process(src, seq, batch, topic, true);
  }

  /** Applies the sequence rules to one batch; `mayReplay` is false while draining after a replay. */
  private process(src: SourceState, seq: number, batch: KvEventBatch, topic: string, mayReplay: boolean): void {
    if (src.next === -1) {
      if (seq === 0 || !src.ep.replayEndpoint || !mayReplay) {
        if (seq > 0) {
          this.c.lost += seq;
          src.incomplete = true;
        }
        this.deliver(src, seq, batch, topic);
        return;
      }
      src.next = 0;
      this.startReplay(src, { seq, batch, topic });
      return;
    }
    if (seq === src.next) {
      this.deliver(src, seq, batch, topic);
      return;
    }
    if (seq < src.next) {
      if (batch.ts > src.lastTs) {
        // a batch we never applied that is newer than all we applied: the publisher restarted
        this.c.restarts++;
        this.logger.warn('publisher restart detected; source reset', { endpoint: src.source.endpoint, dpRank: src.source.dpRank, seq, expected: src.next });
        this.deliverReset(src, seq, batch.ts, topic);
        this.resetDealer(src.ep);
        src.next = -1;
        src.lastTs = Number.NEGATIVE_INFINITY;
        src.incomplete = false;
        this.process(src, seq, batch, topic, mayReplay);
        return;
      }
      this.c.duplicates++;
      return;
    }
    // seq > next: a gap
    if (mayReplay) this.c.gaps++;
    if (mayReplay && src.ep.replayEndpoint) {
      this.startReplay(src, { seq, batch, topic });
      return;
    }
    this.c.lost += seq - src.next;
    src.incomplete = true;
    this.deliver(src, seq, batch, topic);
  }

  /** A restarted publisher has a new replay socket: replies queued for the old one are void. */
  private resetDealer(ep: EndpointState): void {
    ep.replayChain = ep.replayChain.then(() => {
      ep.dealer?.close();
      ep.dealer = null;
    });
  }

  private deliver(src: SourceState, seq: number, batch: KvEventBatch, topic: string): void {
    src.next = seq + 1;
    if (batch.ts > src.lastTs) src.lastTs = batch.ts;
    const source = topic === src.source.topic ? src.source : { ...src.source, topic };
    this.emit({ source, seq, batch, reset: false });
  }

  private deliverReset(src: SourceState, seq: number, ts: number, topic: string): void {
    const source = topic === src.source.topic ? src.source : { ...src.source, topic };
    this.emit({ source, seq, batch: { ts, events: [{ type: 'AllBlocksCleared' }], dataParallelRank: src.source.dpRank }, reset: true });
  }

  private emit(d: KvEventDelivery): void {
    if (this.closed) return;
    if (this.onBatch) {
      this.c.delivered++;
      try {
        this.onBatch(d);
      } catch (e) {
        this.logger.warn('onBatch threw; batch counted as delivered', { endpoint: d.source.endpoint, seq: d.seq, error: (e as Error).message });
      }
      return;
    }
    if (this.queue.length - this.queueHead >= this.maxQueued) {
      this.c.dropped++;
      const s = this.sources.get(`${d.source.endpoint}\u0000${d.source.dpRank ?? ''}`);
      if (s) s.incomplete = true;
      return;
    }
    this.c.delivered++;
    this.queue.push(d);
    this.wake?.();
  }

  private startReplay(src: SourceState, first: Pending): void {
    src.replaying = true;
    src.pending.push(first);
    this.c.replays++;
    const from = src.next;
    src.ep.replayChain = src.ep.replayChain.then(() => this.runReplay(src, from));
  }

  private async runReplay(src: SourceState, from: number): Promise<void> {
    const ep = src.ep;
    try {
      if (this.closed) return;
      if (ep.dealer === null) {
        ep.dealer = new Dealer({ receiveTimeout: this.replayTimeoutMs, sendTimeout: this.replayTimeoutMs, linger: 0 });
        ep.dealer.connect(ep.replayEndpoint as string);
      }
      const dealer = ep.dealer;
      await dealer.send([EMPTY, encodeSeq(from)]);
      for (;;) {
        const frames = await dealer.receive();
        if (this.closed) return;
        // [empty, seq, payload] or [empty, topic, seq, payload]
        if ((frames.length !== 3 && frames.length !== 4) || (frames[0] as Buffer).length !== 0) {
          this.malformed(ep, 'replay', new Error(`expected [empty, (topic,) seq, payload], got ${frames.length} frames`));
          continue;
        }
        let seq: number;
        let batch: KvEventBatch;
        try {
          seq = decodeSeq(frames[frames.length - 2] as Buffer, 'replay seq');
          if (seq === REPLAY_END_SEQ) break;
          batch = this.decoder.decodeBatch(frames[frames.length - 1] as Buffer);
        } catch (e) {
          this.malformed(ep, 'replay', e);
          continue;
        }
        if ((batch.dataParallelRank ?? null) !== src.source.dpRank) continue; // another rank of this publisher
        this.applyReplayed(src, seq, batch);
      }
    } catch (e) {
      if (this.closed) return;
      this.c.replayFailures++;
      src.incomplete = true;
      this.logger.warn('replay failed; continuing from the live stream', { endpoint: ep.endpoint, replayEndpoint: ep.replayEndpoint, from, error: (e as Error).message });
      // a late reply to this request must not be read as the answer to the next one
      ep.dealer?.close();
      ep.dealer = null;
    } finally {
      if (!this.closed) this.drain(src);
    }
  }

  private applyReplayed(src: SourceState, seq: number, batch: KvEventBatch): void {
    if (seq < src.next) {
      this.c.duplicates++;
      return;
    }
    if (seq > src.next) {
      // the publisher no longer holds these (only the last buffer_steps batches are replayable)
      this.c.lost += seq - src.next;
      src.incomplete = true;
    }
    this.deliver(src, seq, batch, src.source.topic);
  }

  private drain(src: SourceState): void {
    src.replaying = false;
    const pending = src.pending.sort((a, b) => a.seq - b.seq);
    src.pending = [];
    for (const p of pending) this.process(src, p.seq, p.batch, p.topic, false);
  }

  /** A snapshot of the counters (see {@link KvEventSubscriberStats}). */
  stats(): KvEventSubscriberStats {
    let malformed = 0;
    for (const ep of this.eps) malformed += ep.malformed;
    return {
      ...this.c,
      malformed,
      endpoints: this.eps.map((ep) => ({ endpoint: ep.endpoint, replayEndpoint: ep.replayEndpoint, received: ep.received, malformed: ep.malformed })),
      sources: [...this.sources.values()].map((s) => ({ source: s.source, nextSeq: Math.max(0, s.next), possiblyIncomplete: s.incomplete, replaying: s.replaying })),
    };
  }

  /**
   * Delivered batches in order, when no `onBatch` callback was given. Ends after {@link close}.
   * One consumer at a time.
   */
  async *[Symbol.asyncIterator](): AsyncIterator<KvEventDelivery> {
    for (;;) {
      while (this.queueHead < this.queue.length) {
        const d = this.queue[this.queueHead] as KvEventDelivery;
        this.queue[this.queueHead++] = undefined as never;
        if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
          this.queue.splice(0, this.queueHead);
          this.queueHead = 0;
        }
        yield d;
      }
      if (this.closed) return;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
      this.wake = null;
    }
  }

  /** Closes every socket this subscriber opened and ends the iterator. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const ep of this.eps) {
      ep.sub.close();
      ep.dealer?.close();
      ep.dealer = null;
    }
    this.wake?.();
    await Promise.all(this.loops);
    await Promise.all(this.eps.map((ep) => ep.replayChain.catch(() => undefined)));
  }
}
