/**
 * A KV-event publisher that speaks vLLM's wire: PUB messages `[topic, seq, payload]` and a ROUTER
 * that replays the last `bufferSteps` batches on request. For kvmgr's engine server and for
 * tests of subscribers.
 *
 * @see vllm-project/vllm:vllm/distributed/kv_events.py (ZmqEventPublisher)
 */
import type { KvEvent, KvEventBatch } from '@kvmgr/core';
import { KvmgrError, invalidArgument, requirePositiveInt } from '@kvmgr/core';
import { Publisher, Router } from 'zeromq';
import { type KvEventEncoding, KvEventEncoder } from './encode.js';
import { endpointBinds, endpointForDpRank, requireEndpoint } from './endpoint.js';
import { REPLAY_END_SEQ, decodeSeq, encodeSeq } from './wire.js';

/** Options of {@link KvEventPublisher.create}. */
export interface KvEventPublisherOptions {
  /**
   * PUB endpoint. Binds when it contains `*`, `::`, `ipc://` or `inproc://`, else connects
   * (vLLM's rule; see {@link KvEventPublisherOptions.bind}). Port 0 binds an ephemeral port; read
   * the result from {@link KvEventPublisher.endpoint}. @default 'tcp://*:5557'
   */
  readonly endpoint?: string;
  /** ROUTER endpoint for replay (always bound); null = no replay. @default null */
  readonly replayEndpoint?: string | null;
  /** Topic frame of every message. @default '' */
  readonly topic?: string;
  /** Batches kept for replay. @default 10000 */
  readonly bufferSteps?: number;
  /** ZMQ send high-water mark (messages); PUB drops beyond it. @default 100000 */
  readonly hwm?: number;
  /**
   * Data-parallel rank: offsets both endpoints (tcp port + rank, `_dp<rank>` for ipc/inproc) and
   * is written into every batch. @default null
   */
  readonly dataParallelRank?: number | null;
  /** Event layout: `map` (current vLLM) or `array` (legacy). @default 'map' */
  readonly encoding?: KvEventEncoding;
  /** Overrides the bind-or-connect rule for `endpoint` (tests bind `tcp://127.0.0.1:0`). @default vLLM's rule */
  readonly bind?: boolean;
  /** Replay replies carry a topic frame `[empty, topic, seq, payload]`, as some vLLM revisions do. @default false */
  readonly replayTopicFrame?: boolean;
  /**
   * FOR FAULT TESTS ONLY: when it returns true for a seq, that batch is kept in the replay buffer
   * but not sent on the PUB socket (a message lost in flight). @default undefined
   */
  readonly dropIf?: (seq: number) => boolean;
}

interface Buffered {
  seq: number;
  payload: Uint8Array;
}

/**
 * Publishes KV-event batches as vLLM does.
 *
 * @example
 * ```ts
 * const pub = await KvEventPublisher.create({ endpoint: 'tcp://*:5557', replayEndpoint: 'tcp://*:5558' });
 * await pub.publish([{ type: 'BlockStored', blockHashes: [1n], parentBlockHash: null, tokenIds: [1, 2], blockSize: 2 }]);
 * await pub.close();
 * ```
 * @see vllm-project/vllm:vllm/distributed/kv_events.py
 */
export class KvEventPublisher {
  /** The PUB endpoint in use (the bound address, ephemeral port resolved, when it binds). */
  readonly endpoint: string;
  /** The bound ROUTER endpoint, or null without replay. */
  readonly replayEndpoint: string | null;
  readonly topic: string;
  readonly bufferSteps: number;
  readonly dataParallelRank: number | null;
  private readonly pub: Publisher;
  private readonly router: Router | null;
  private readonly encoder: KvEventEncoder;
  private readonly topicFrame: Buffer;
  private readonly ring: (Buffered | undefined)[];
  private readonly dropIf: ((seq: number) => boolean) | undefined;
  private readonly replayTopicFrame: boolean;
  private seq = 0;
  private sending: Promise<void> = Promise.resolve();
  private closed = false;
  private replayLoop: Promise<void> = Promise.resolve();

  private constructor(
    pub: Publisher,
    router: Router | null,
    endpoint: string,
    replayEndpoint: string | null,
    o: KvEventPublisherOptions,
    bufferSteps: number,
  ) {
    this.pub = pub;
    this.router = router;
    this.endpoint = endpoint;
    this.replayEndpoint = replayEndpoint;
    this.topic = o.topic ?? '';
    this.topicFrame = Buffer.from(this.topic, 'utf8');
    this.bufferSteps = bufferSteps;
    this.ring = new Array<Buffered | undefined>(bufferSteps);
    this.dataParallelRank = o.dataParallelRank ?? null;
    this.encoder = new KvEventEncoder({ encoding: o.encoding ?? 'map' });
    this.dropIf = o.dropIf;
    this.replayTopicFrame = o.replayTopicFrame ?? false;
    if (router) this.replayLoop = this.serveReplay(router);
  }

  /**
   * Opens the sockets (binds/connects) and starts serving replay.
   *
   * @param options - see {@link KvEventPublisherOptions}.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` on a bad endpoint, rank, `bufferSteps` or `hwm`;
   *   `KVMGR_UNAVAILABLE` when an endpoint cannot be bound (address in use, bad path).
   */
  static async create(options: KvEventPublisherOptions = {}): Promise<KvEventPublisher> {
    const bufferSteps = requirePositiveInt('bufferSteps', options.bufferSteps ?? 10_000);
    const hwm = requirePositiveInt('hwm', options.hwm ?? 100_000);
    const dp = options.dataParallelRank ?? null;
    const base = requireEndpoint('endpoint', options.endpoint ?? 'tcp://*:5557');
    const endpoint = dp === null ? base : endpointForDpRank(base, dp);
    const replayBase = options.replayEndpoint == null ? null : requireEndpoint('replayEndpoint', options.replayEndpoint);
    const replayAt = replayBase === null ? null : dp === null ? replayBase : endpointForDpRank(replayBase, dp);
    if (options.dropIf !== undefined && typeof options.dropIf !== 'function') throw invalidArgument('dropIf', options.dropIf, 'a function (seq) => boolean');
    const pub = new Publisher({ sendHighWaterMark: hwm, linger: 0 });
    let router: Router | null = null;
    try {
      let bound = endpoint;
      if (options.bind ?? endpointBinds(endpoint)) {
        await pub.bind(endpoint);
        bound = pub.lastEndpoint ?? endpoint;
      } else {
        pub.connect(endpoint);
      }
      let replayBound: string | null = null;
      if (replayAt !== null) {
        router = new Router({ linger: 0 });
        await router.bind(replayAt);
        replayBound = router.lastEndpoint ?? replayAt;
      }
      return new KvEventPublisher(pub, router, bound, replayBound, options, bufferSteps);
    } catch (e) {
      pub.close();
      router?.close();
      throw new KvmgrError('KVMGR_UNAVAILABLE', `cannot open KV event publisher on ${endpoint}${replayAt ? ` / replay ${replayAt}` : ''}: ${(e as Error).message}`, { cause: e });
    }
  }

  /** The seq the next batch will get. */
  get nextSeq(): number {
    return this.seq;
  }

  /**
   * Publishes one batch (one engine step). The batch is stored for replay first, then sent;
   * sends are serialised, so batches leave in seq order.
   *
   * @param events - the events, or a whole batch (`ts` in seconds; rank defaults to the publisher's).
   * @returns the batch's seq.
   * @throws KvmgrError `KVMGR_INVALID_STATE` after {@link close}; `KVMGR_INVALID_ARGUMENT` on an
   *   event that cannot be encoded (nothing is stored or sent then).
   */
  publish(events: readonly KvEvent[] | KvEventBatch): Promise<number> {
    if (this.closed) return Promise.reject(new KvmgrError('KVMGR_INVALID_STATE', 'publish() after close()'));
    const batch: KvEventBatch = Array.isArray(events)
      ? { ts: Date.now() / 1000, events: events as readonly KvEvent[], dataParallelRank: this.dataParallelRank }
      : { ...(events as KvEventBatch), dataParallelRank: (events as KvEventBatch).dataParallelRank ?? this.dataParallelRank };
    let payload: Uint8Array;
    try {
      payload = this.encoder.encodeBatch(batch);
    } catch (e) {
      return Promise.reject(e);
    }
    const seq = this.seq++;
    this.ring[seq % this.bufferSteps] = { seq, payload };
    if (this.dropIf?.(seq)) return Promise.resolve(seq);
    const frames = [this.topicFrame, encodeSeq(seq), payload];
    const sent = this.sending.then(() => (this.closed ? undefined : this.pub.send(frames)));
    this.sending = sent.catch(() => undefined);
    return sent.then(() => seq);
  }

  private async serveReplay(router: Router): Promise<void> {
    try {
      for await (const frames of router) {
        // DEALER/REQ framing: [identity, empty, start_seq]
        if (frames.length !== 3) continue;
        const [identity, , startFrame] = frames as [Buffer, Buffer, Buffer];
        let start: number;
        try {
          start = decodeSeq(startFrame, 'replay start_seq');
        } catch {
          continue;
        }
        const first = Math.max(start, this.seq - this.bufferSteps, 0);
        for (let s = first; s < this.seq; s++) {
          const b = this.ring[s % this.bufferSteps];
          if (b === undefined || b.seq !== s) continue;
          const reply = this.replayTopicFrame ? [identity, Buffer.alloc(0), this.topicFrame, encodeSeq(s), b.payload] : [identity, Buffer.alloc(0), encodeSeq(s), b.payload];
          await router.send(reply);
        }
        await router.send(this.replayTopicFrame ? [identity, Buffer.alloc(0), this.topicFrame, encodeSeq(REPLAY_END_SEQ), Buffer.alloc(0)] : [identity, Buffer.alloc(0), encodeSeq(REPLAY_END_SEQ), Buffer.alloc(0)]);
      }
    } catch (e) {
      if (!this.closed) throw e;
    }
  }

  /** Closes both sockets (pending sends are dropped: linger 0). Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.sending;
    this.pub.close();
    this.router?.close();
    await this.replayLoop.catch(() => undefined);
  }
}
