/**
 * `kvmgr events tail`: subscribes to a vLLM KV-event publisher and prints decoded events, one
 * per line (or JSON lines), with gap/replay counters and rates on stderr.
 */
import type { KvEvent } from '@kvmgr/core';
import { type KvEventDelivery, KvEventSubscriber, requireEndpoint } from '@kvmgr/adapter-vllm';
import { parseDurationMs } from './parse.js';

/** Flags of `kvmgr events tail` as commander gives them. */
export interface EventsTailOptions {
  endpoint: string;
  replay?: string;
  topic?: string;
  json?: boolean;
  count?: number;
  duration?: string;
  statsInterval?: string;
}

function short(h: bigint): string {
  return h.toString(16).padStart(16, '0');
}

function textLine(d: KvEventDelivery, e: KvEvent): string {
  const src = `${d.source.endpoint}${d.source.dpRank === null ? '' : `#dp${d.source.dpRank}`}`;
  const head = `seq=${d.seq} src=${src}${d.reset ? ' RESET' : ''}`;
  switch (e.type) {
    case 'BlockStored':
      return `${head} BlockStored blocks=${e.blockHashes.length} hashes=${e.blockHashes.map(short).join(',')} parent=${e.parentBlockHash == null ? '-' : short(e.parentBlockHash)} tokens=${e.tokenIds.length} block_size=${e.blockSize} medium=${e.medium ?? 'GPU'}${e.loraName ? ` lora=${e.loraName}` : ''}`;
    case 'BlockRemoved':
      return `${head} BlockRemoved blocks=${e.blockHashes.length} hashes=${e.blockHashes.map(short).join(',')} medium=${e.medium ?? 'GPU'}`;
    default:
      return `${head} AllBlocksCleared${e.medium ? ` medium=${e.medium}` : ''}`;
  }
}

function jsonLine(d: KvEventDelivery, e: KvEvent): string {
  return JSON.stringify({ seq: d.seq, ts: d.batch.ts, source: d.source, reset: d.reset, event: e }, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
}

/**
 * Runs the tail until `--count` events, `--duration`, or SIGINT/SIGTERM; closes the subscriber.
 *
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` on a malformed endpoint, count or duration.
 */
export async function runEventsTail(opts: EventsTailOptions): Promise<void> {
  const endpoint = requireEndpoint('--endpoint', opts.endpoint);
  const replay = opts.replay === undefined ? null : requireEndpoint('--replay', opts.replay);
  const durationMs = opts.duration === undefined ? undefined : parseDurationMs('--duration', opts.duration);
  const statsMs = parseDurationMs('--stats-interval', opts.statsInterval ?? '5s');
  const limit = opts.count ?? Number.POSITIVE_INFINITY;
  const format = opts.json ? jsonLine : textLine;
  let printed = 0;
  let done!: () => void;
  const finished = new Promise<void>((r) => {
    done = r;
  });
  const sub = new KvEventSubscriber({
    endpoints: endpoint,
    replayEndpoints: replay,
    topic: opts.topic ?? '',
    logger: { warn: (m, d) => process.stderr.write(`kvmgr events: ${m} ${JSON.stringify(d)}\n`) },
    onBatch: (d) => {
      for (const e of d.batch.events) {
        if (printed >= limit) break;
        process.stdout.write(`${format(d, e)}\n`);
        printed++;
      }
      if (printed >= limit) done();
    },
  });
  let lastPrinted = 0;
  const report = () => {
    const s = sub.stats();
    const rate = ((printed - lastPrinted) * 1000) / statsMs;
    lastPrinted = printed;
    process.stderr.write(
      `kvmgr events: ${printed} events (${rate.toFixed(1)}/s) batches=${s.delivered} gaps=${s.gaps} replays=${s.replays} replay_failures=${s.replayFailures} lost=${s.lost} duplicates=${s.duplicates} dropped=${s.dropped} restarts=${s.restarts} malformed=${s.malformed}\n`,
    );
  };
  const statsTimer = setInterval(report, statsMs);
  const stopTimer = durationMs === undefined ? undefined : setTimeout(done, durationMs);
  const onSignal = () => done();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await finished;
  } finally {
    clearInterval(statsTimer);
    if (stopTimer) clearTimeout(stopTimer);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await sub.close();
    report();
  }
}
