/**
 * Fleet-wide A/B statistics over Redis: each gateway replica writes a **snapshot** of what it
 * recorded for the running experiment (counts and per-arm running moments: n, mean, M2 per
 * metric) into one hash per experiment, `P ab:<id>` (field = replica id), and `GET /admin/ab`
 * merges every replica's snapshot ({@link mergeAbSnapshots}) before computing means, Student-t
 * intervals and Welch differences.
 *
 * Why snapshots merged at read time rather than counters incremented in Redis
 * (`HINCRBYFLOAT` of count, Σx, Σx²):
 *
 * - **Idempotent.** A snapshot write replaces the replica's field: a write that timed out but
 *   landed, or one repeated after a reconnect, counts nothing twice; one that was lost is
 *   replaced by the next. Observations made while Redis was down are in the next snapshot, so
 *   the fleet view is complete again after an outage (increments made during it would be lost
 *   or need a replay buffer).
 * - **Numerically stable.** Welford's moments merged pairwise (Chan et al.) do not subtract
 *   Σx²/n from Σx², which loses most digits for latencies with a small spread around a large mean.
 * - **Cheap on the hot path.** A request touches only the in-memory moments; a replica writes one
 *   `HSET` + `PEXPIRE` per {@link AB_FLUSH_MS} while it records anything, whatever its rate.
 *
 * The cost: another replica's share is up to {@link AB_FLUSH_MS} old in a report (the replica
 * answering writes its own snapshot and uses its in-memory state). The merge folds the
 * snapshots in replica-id order, so every replica computes the same numbers from the same
 * snapshots.
 */
import type { RedisLink } from '@kvmgr/router';
import { AB_METRIC_NAMES, type AbContributor, type AbExperiment, type AbKeySource, type AbMetricName, type AbMoments, type AbSnapshot, type AbView, mergeAbSnapshots } from '../ab.js';

/** How often a replica writes its snapshot while it records, ms. */
export const AB_FLUSH_MS = 1000;
/** A snapshot is rewritten at least this often even without new traffic (keeps the key's TTL alive), ms. */
export const AB_REFRESH_MS = 60_000;
/** An experiment's hash expires this long after the last write by any replica, ms (24 h). */
export const AB_TTL_MS = 24 * 3600 * 1000;

/** A snapshot as stored (JSON; doubles round-trip exactly through JSON's shortest representation). */
interface Stored {
  v: 1;
  since: number;
  at: number;
  assigned: [number, number];
  recorded: [number, number];
  sources: [number, number, number];
  stats: [Record<string, [number, number, number]>, Record<string, [number, number, number]>];
}

const SOURCES: readonly AbKeySource[] = ['session', 'user', 'request'];

/** The stored form of a snapshot taken at `atMs`. */
export function encodeAbSnapshot(s: AbSnapshot, atMs: number): string {
  const arm = (i: 0 | 1) => Object.fromEntries(AB_METRIC_NAMES.map((m) => [m, [s.stats[i][m].n, s.stats[i][m].mean, s.stats[i][m].m2]]));
  return JSON.stringify({ v: 1, since: s.sinceMs, at: atMs, assigned: s.assigned, recorded: s.recorded, sources: SOURCES.map((k) => s.keySources[k]), stats: [arm(0), arm(1)] });
}

const finite = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);
const counts = (x: unknown, len: number): x is number[] => Array.isArray(x) && x.length === len && x.every((v) => finite(v) && v >= 0);

/**
 * A stored snapshot of experiment `id`, with when it was written; undefined when the text is not
 * a snapshot this version reads (left out of the merge).
 */
export function decodeAbSnapshot(text: string, id: string): { snapshot: AbSnapshot; atMs: number } | undefined {
  let o: Partial<Stored>;
  try {
    o = JSON.parse(text) as Partial<Stored>;
  } catch {
    return undefined;
  }
  if (o === null || typeof o !== 'object' || o.v !== 1 || !finite(o.since) || !finite(o.at) || !counts(o.assigned, 2) || !counts(o.recorded, 2) || !counts(o.sources, 3)) return undefined;
  if (!Array.isArray(o.stats) || o.stats.length !== 2) return undefined;
  const arms: Record<AbMetricName, AbMoments>[] = [];
  for (const a of o.stats) {
    if (a === null || typeof a !== 'object') return undefined;
    const arm: Partial<Record<AbMetricName, AbMoments>> = {};
    for (const m of AB_METRIC_NAMES) {
      const t = (a as Record<string, unknown>)[m];
      if (!Array.isArray(t) || t.length !== 3 || !t.every(finite)) return undefined;
      const [n, mean, m2] = t as [number, number, number];
      if (n < 0 || !Number.isInteger(n) || m2 < 0) return undefined;
      arm[m] = { n, mean, m2 };
    }
    arms.push(arm as Record<AbMetricName, AbMoments>);
  }
  const [s, u, r] = o.sources;
  return {
    snapshot: {
      id,
      sinceMs: o.since,
      assigned: [o.assigned[0] as number, o.assigned[1] as number],
      recorded: [o.recorded[0] as number, o.recorded[1] as number],
      keySources: { session: s as number, user: u as number, request: r as number },
      stats: [arms[0] as Record<AbMetricName, AbMoments>, arms[1] as Record<AbMetricName, AbMoments>],
    },
    atMs: o.at,
  };
}

/** Options of {@link AbStatsSync}. */
export interface AbStatsSyncOptions {
  readonly link: RedisLink;
  /** Key prefix of the replica state, `kvmgr:{<namespace>}:`. */
  readonly prefix: string;
  readonly replicaId: string;
  /** Longest wait for the fleet read, ms (after it: the local view, and the link degrades). */
  readonly commandTimeoutMs: number;
  /** The running experiment, if any. */
  readonly current: () => AbExperiment | undefined;
  /** @default {@link AB_FLUSH_MS} */
  readonly flushMs?: number;
}

/** Writes this replica's A/B snapshot to Redis and reads the fleet's. */
export class AbStatsSync {
  private readonly o: AbStatsSyncOptions;
  private timer: NodeJS.Timeout | undefined;
  /** The experiment last written, and when. */
  private written: { ab: AbExperiment; atMs: number } | undefined;
  private writing = false;
  private readonly offChange: () => void;

  constructor(options: AbStatsSyncOptions) {
    this.o = options;
    // after an outage (or a Redis restart: empty) the next tick writes the whole snapshot again
    this.offChange = options.link.onChange((degraded) => {
      if (!degraded) this.written = undefined;
    });
  }

  /** The hash of experiment `id`. */
  keyOf(id: string): string {
    return `${this.o.prefix}ab:${id}`;
  }

  /** Starts the periodic write. */
  start(): void {
    this.timer = setInterval(() => void this.tick(), this.o.flushMs ?? AB_FLUSH_MS);
    this.timer.unref();
  }

  /** Writes the current experiment's snapshot when it recorded anything since the last write (or the last is old, or failed). */
  private async tick(): Promise<void> {
    const ab = this.o.current();
    if (ab === undefined || this.writing) return;
    const dirty = ab.takeDirty();
    const w = this.written;
    if (!dirty && w !== undefined && w.ab === ab && Date.now() - w.atMs < AB_REFRESH_MS) return;
    if (!(await this.write(ab))) this.written = undefined;
  }

  /** Writes `ab`'s snapshot (field = this replica) and renews the hash's TTL. @returns whether Redis took it. */
  async write(ab: AbExperiment): Promise<boolean> {
    this.writing = true;
    try {
      const at = Date.now();
      const key = this.keyOf(ab.id);
      const ok = await this.o.link.run((r) => r.multi().hset(key, this.o.replicaId, encodeAbSnapshot(ab.snapshot(), at)).pexpire(key, AB_TTL_MS).exec());
      if (ok === undefined || ok === null) return false;
      this.written = { ab, atMs: at };
      return true;
    } finally {
      this.writing = false;
    }
  }

  /**
   * The fleet view of `ab`: this replica's snapshot is written and every replica's read in one
   * round trip (`MULTI`: `HSET`, `PEXPIRE`, `HGETALL`), then merged in replica-id order with this
   * replica's in-memory snapshot in its place. Falls back to the local view, saying why, when the
   * link is degraded, the read fails or takes longer than `commandTimeoutMs`. Never throws.
   */
  async view(ab: AbExperiment): Promise<AbView> {
    const own = ab.snapshot();
    const at = Date.now();
    const local = (fallback: string) => this.localView(ab, fallback, own, at);
    const link = this.o.link;
    if (link.degraded) return local(`redis unavailable (${link.lastError ?? 'not connected'}): this replica's statistics only`);
    const key = this.keyOf(ab.id);
    let timer: NodeJS.Timeout | undefined;
    const res = await link.run(async (r) => {
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`A/B statistics read took longer than ${this.o.commandTimeoutMs} ms`)), this.o.commandTimeoutMs);
      });
      const exec = r.multi().hset(key, this.o.replicaId, encodeAbSnapshot(own, at)).pexpire(key, AB_TTL_MS).hgetall(key).exec();
      exec.catch(() => undefined); // a late failure after the timeout won
      return Promise.race([exec, timeout]);
    }).finally(() => clearTimeout(timer));
    const all = res?.[2];
    if (res === undefined || res === null || all === undefined || all[0] !== null) {
      const why = all?.[0] instanceof Error ? all[0].message : (link.lastError ?? 'no answer');
      return local(`redis read failed (${why}): this replica's statistics only`);
    }
    this.written = { ab, atMs: at };
    const fields = all[1] as Record<string, string>;
    const parts = new Map<string, { snapshot: AbSnapshot; atMs: number }>();
    for (const [replica, text] of Object.entries(fields)) {
      if (replica === this.o.replicaId) continue;
      const d = decodeAbSnapshot(text, ab.id);
      if (d !== undefined) parts.set(replica, d);
    }
    parts.set(this.o.replicaId, { snapshot: own, atMs: at });
    const ids = [...parts.keys()].sort();
    let merged: AbSnapshot | undefined;
    const contributors: AbContributor[] = [];
    for (const id of ids) {
      const p = parts.get(id) as { snapshot: AbSnapshot; atMs: number };
      merged = merged === undefined ? p.snapshot : mergeAbSnapshots(merged, p.snapshot);
      contributors.push({ replica: id, since: new Date(p.snapshot.sinceMs).toISOString(), updated: new Date(p.atMs).toISOString(), requests: p.snapshot.recorded[0] + p.snapshot.recorded[1] });
    }
    return { snapshot: merged as AbSnapshot, scope: 'fleet', contributors, fallback: null };
  }

  /**
   * This replica's statistics only (`?scope=local`, or the fleet view's fallback).
   *
   * @param fallback - why the fleet view was not given; null when the local one was asked for.
   */
  localView(ab: AbExperiment, fallback: string | null, own = ab.snapshot(), atMs = Date.now()): AbView {
    return {
      snapshot: own,
      scope: 'local',
      contributors: [{ replica: this.o.replicaId, since: new Date(own.sinceMs).toISOString(), updated: new Date(atMs).toISOString(), requests: own.recorded[0] + own.recorded[1] }],
      fallback,
    };
  }

  /** Stops the periodic write and writes the current experiment's final snapshot (best effort). */
  async close(): Promise<void> {
    clearInterval(this.timer);
    this.offChange();
    const ab = this.o.current();
    if (ab !== undefined && !this.o.link.degraded) await this.write(ab);
  }
}
