/**
 * Helpers of the replica tests: a multi-turn chat workload run through the `openai` SDK over
 * several gateways, a reference block index fed in-process by each engine's own KV events (what
 * the engine's cache holds, in the gateway's key space), and readers of the shared index in Redis.
 */
import { createRng } from '@kvmgr/core';
import { KvBlockIndex, blockKeyHex } from '@kvmgr/router';
import type { Redis } from 'ioredis';
import OpenAI from 'openai';
import { request } from 'undici';
import type { Gateway, GatewayConfigInput } from '../src/index.js';
import { MODEL, type TestEngine, endpointsOf } from './helpers.js';

type Msg = { role: 'system' | 'user' | 'assistant'; content: string };

/** One answered (or failed) request of a workload. */
export interface TurnResult {
  readonly session: number;
  readonly turn: number;
  /** Which gateway (index into the list given) routed it. */
  readonly via: number;
  /** `x-kvmgr-endpoint` of the answer; '' when the request failed. */
  readonly endpoint: string;
  readonly promptTokens: number;
  readonly cachedTokens: number;
  /** Error message when the client saw a failure. */
  readonly error?: string;
  /** When it was sent, ms since the epoch. */
  readonly sentAtMs: number;
}

/** A long system prompt of its own per session (≈ 900 tokens), so prefix reuse is per conversation. */
export function systemPrompt(session: number, salt = 0): string {
  const words: string[] = [];
  for (let i = 0; i < 220; i++) words.push(`topic${session}-${(i * 7919 + session * 104729 + salt * 31) % 1000}`);
  return `You are assistant number ${session} (run ${salt}). Background: ${words.join(' ')}.`;
}

/** Options of {@link runConversations}. */
export interface ConversationOptions {
  /** The gateways requests are spread over. */
  readonly gateways: readonly { readonly url: string }[];
  /** Sessions [firstSession, firstSession + sessions). */
  readonly sessions: number;
  readonly firstSession?: number;
  readonly turns: number;
  /** Conversations in flight at once (each runs its turns in order). */
  readonly concurrency: number;
  /** Which gateway routes turn `turn` of `session`. @default (session + turn) mod gateways */
  readonly pick?: (session: number, turn: number) => number;
  /** Prompt salt: the same salt gives the same requests. @default 0 */
  readonly salt?: number;
  /** Called after every answer or failure (the results so far). */
  readonly onResult?: (results: readonly TurnResult[]) => void;
  /** Output tokens per turn. @default 8 */
  readonly maxTokens?: number;
}

/**
 * Runs multi-turn conversations: each turn resends the history plus a new question (so turn `t`
 * extends turn `t − 1`'s prompt). Failures are recorded, not thrown. Deterministic requests for
 * a given salt (the answers come from the engines' seeded generator).
 */
export async function runConversations(o: ConversationOptions): Promise<TurnResult[]> {
  const clients = o.gateways.map((g) => new OpenAI({ baseURL: `${g.url}/v1`, apiKey: 'x', maxRetries: 0, timeout: 60_000 }));
  const pick = o.pick ?? ((s: number, t: number) => (s + t) % o.gateways.length);
  const first = o.firstSession ?? 0;
  const results: TurnResult[] = [];
  let next = first;
  const worker = async () => {
    while (next < first + o.sessions) {
      const session = next++;
      const msgs: Msg[] = [{ role: 'system', content: systemPrompt(session, o.salt ?? 0) }];
      for (let turn = 0; turn < o.turns; turn++) {
        msgs.push({ role: 'user', content: `Question ${turn} of session ${session}: what about item ${session * 10 + turn}?` });
        const via = pick(session, turn);
        const sentAtMs = Date.now();
        try {
          const { data, response } = await (clients[via] as OpenAI).chat.completions
            .create({ model: MODEL, messages: msgs, max_tokens: o.maxTokens ?? 8 }, { headers: { 'x-request-id': `s${session}-t${turn}-${o.salt ?? 0}` } })
            .withResponse();
          msgs.push({ role: 'assistant', content: data.choices[0]?.message.content ?? '' });
          results.push({ session, turn, via, endpoint: response.headers.get('x-kvmgr-endpoint') ?? '', promptTokens: data.usage?.prompt_tokens ?? 0, cachedTokens: data.usage?.prompt_tokens_details?.cached_tokens ?? 0, sentAtMs });
        } catch (e) {
          results.push({ session, turn, via, endpoint: '', promptTokens: 0, cachedTokens: 0, error: (e as Error).message, sentAtMs });
          msgs.push({ role: 'assistant', content: '' });
        }
        o.onResult?.(results);
      }
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, worker));
  return results;
}

/** Token prefix hit rate of answered requests: Σ cached_tokens / Σ prompt_tokens. */
export function hitRate(rs: readonly TurnResult[]): number {
  let p = 0;
  let c = 0;
  for (const r of rs) {
    p += r.promptTokens;
    c += r.cachedTokens;
  }
  return p === 0 ? 0 : c / p;
}

/** Follow-up turns (turn ≥ 1) that landed on the engine of the same conversation's previous turn, and all follow-ups. */
export function stickiness(rs: readonly TurnResult[]): { same: number; followUps: number; moved: string[] } {
  const by = new Map<string, TurnResult>();
  for (const r of rs) by.set(`${r.session}/${r.turn}`, r);
  let same = 0;
  let followUps = 0;
  const moved: string[] = [];
  for (const r of rs) {
    if (r.turn === 0 || r.error !== undefined) continue;
    const prev = by.get(`${r.session}/${r.turn - 1}`);
    if (prev === undefined || prev.error !== undefined) continue;
    followUps++;
    if (prev.endpoint === r.endpoint) same++;
    else moved.push(`session ${r.session} turn ${r.turn}: ${prev.endpoint} (via ${prev.via}) → ${r.endpoint} (via ${r.via})`);
  }
  return { same, followUps, moved };
}

/** A seeded order (only to vary which sessions start first between phases). */
export function shuffled<T>(xs: readonly T[], seed: number): T[] {
  const rng = createRng(seed);
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

/**
 * A block index fed in-process by every engine's own KV events (the engine core's `onKvEvents`
 * hook, before the wire): what each engine's cache holds, keyed like the gateway's index
 * (namespace = the model). Instances are `e0`, `e1`, … as in {@link endpointsOf}.
 */
export function referenceIndex(fleet: readonly TestEngine[]): KvBlockIndex {
  const ref = new KvBlockIndex({ namespace: { model: MODEL } });
  fleet.forEach((f, i) => {
    const name = `e${i}`;
    ref.addInstance(name);
    const core = f.server.core;
    const hooks = core.hooks;
    core.hooks = {
      ...hooks,
      onKvEvents: (events) => {
        hooks.onKvEvents?.(events);
        ref.applyEvents(name, events);
      },
    };
  });
  return ref;
}

/** Block keys (16 hex digits) an instance of a local index holds confirmed (any tier). */
export function heldKeys(index: KvBlockIndex, instance: string): Set<string> {
  const out = new Set<string>();
  index.forEachHeld(instance, (hi, lo) => out.add(blockKeyHex(hi, lo)));
  return out;
}

/**
 * Block keys an endpoint holds confirmed (any tier: fields `g|`, `c|`, `d|`) in the shared index
 * under `prefix` (`kvmgr:{<namespace>}:`); speculative-only keys are left out. No clear may be in
 * progress (checked).
 */
export async function sharedKeys(redis: Redis, prefix: string, endpoint: string): Promise<Set<string>> {
  if ((await redis.hexists(`${prefix}clearing`, endpoint)) === 1) throw new Error(`a clear of ${endpoint} is in progress`);
  const members = await redis.zrange(`${prefix}e:${endpoint}`, 0, -1);
  const p = redis.pipeline();
  for (const m of members) p.hmget(`${prefix}b:${m}`, `g|${endpoint}`, `c|${endpoint}`, `d|${endpoint}`);
  const res = (await p.exec()) ?? [];
  const out = new Set<string>();
  members.forEach((m, i) => {
    const v = res[i]?.[1] as (string | null)[] | undefined;
    if (v?.some((x) => x !== null)) out.add(m);
  });
  return out;
}

/** `/health`'s `redis` section. */
export async function redisHealth(gw: Gateway | string): Promise<{ mode: string; replica: string; leases: string[] } | undefined> {
  const url = typeof gw === 'string' ? gw : gw.url;
  const r = await request(`${url}/health`);
  const body = (await r.body.json()) as { redis?: { mode: string; replica: string; leases: string[] } };
  return body.redis;
}

/** Waits until every gateway reports shared mode (bounded). */
export async function allShared(gws: readonly (Gateway | string)[], timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const modes = await Promise.all(gws.map(async (g) => (await redisHealth(g))?.mode));
    if (modes.every((m) => m === 'shared')) return;
    if (Date.now() > end) throw new Error(`replicas not all shared after ${timeoutMs} ms: ${modes.join(', ')}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * A replica's configuration: every engine of the fleet (KV events on), scorers pa:3,qd:2,kv:2.
 * The command timeout is 5 s, as in replicas.test.ts: under load a 200 ms one expired with Redis
 * up (the reply sat in the socket behind a lagging event loop), degraded the link and made the
 * next decision local. Redis killed still degrades at once (its connections close).
 */
export function replicaConfig(fleet: readonly TestEngine[], redis: { url: string; namespace: string; replicaId: string } | undefined, lease = { leaseTtlMs: 1000, leaseRenewMs: 250 }): GatewayConfigInput {
  return {
    server: { port: 0, logLevel: 'warn' },
    model: MODEL,
    endpoints: endpointsOf(fleet),
    routing: 'pa:3,qd:2,kv:2',
    ...(redis === undefined ? {} : { redis: { ...redis, commandTimeoutMs: 5000, ...lease } }),
  };
}
