/**
 * The gateway's configuration: a YAML file (or an object) validated with zod into one
 * {@link ResolvedGatewayConfig}. Every failure is a `KvmgrError` `KVMGR_BAD_CONFIG` with a
 * one-line message that starts with the bad key (`endpoints[1].url: …`, `routing.scorers: …`).
 *
 * Routing takes kvmgr's router vocabulary (`scorers: pa:3,qd:2,kv:2`, a preset, or the router's
 * object form) or llm-d's `EndpointPickerConfig` (`plugins` + `schedulingProfiles` with
 * `pluginRef`/`weight`), translated to the same router configuration.
 *
 * @see llm-d/llm-d-inference-scheduler: EndpointPickerConfig (plugins, schedulingProfiles)
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { EngineKind, InstanceRole } from '@kvmgr/core';
import { DEFAULT_TOKENIZER, TOKENIZER_NAMES, type TokenizerName, tokenizerNameForModel } from '@kvmgr/adapter-vllm';
import { KvmgrError, isKvmgrError } from '@kvmgr/core';
import { type ResolvedRouterConfig, type RouterConfig, parseRouterConfig, resolveRouterConfig } from '@kvmgr/router';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { type ResolvedAbConfig, resolveAbConfig } from './ab.js';
import { urlString } from './config-error.js';
import { type EmbeddingsConfig, resolveEmbeddingsConfig } from './embeddings.js';
import type { RedisConfig } from './shared/replica-state.js';
import { type TenantsConfig, resolveTenantsConfig } from './tenants.js';

/** One upstream engine endpoint. */
export interface EndpointConfig {
  /** Unique name (`instanceId` in the index and logs). @default host:port of `url` */
  readonly name: string;
  /** Base URL of the OpenAI server, e.g. `http://10.0.0.5:8000` (no trailing slash). */
  readonly url: string;
  readonly engine: EngineKind;
  readonly role: Exclude<InstanceRole, 'embedding'>;
  /** Prometheus URL. @default `${url}/metrics` */
  readonly metricsUrl: string;
  /** KV-event PUB endpoint (`tcp://host:5557`); absent = approximate index from routing history. */
  readonly kvEvents: string | null;
  /** KV-event replay ROUTER endpoint. */
  readonly replay: string | null;
  /** Tokens per block; overrides `vllm:cache_config_info`. */
  readonly blockSize: number | null;
  /** KV capacity in tokens, for engines that do not export it (TGI, LMDeploy). */
  readonly kvCapacityTokens: number | null;
}

/** Admission control settings. */
export interface AdmissionConfig {
  /** @default true */
  readonly enabled: boolean;
  /** Requests held in the DEFER queue; beyond it a request is rejected (429). @default 256 */
  readonly maxQueue: number;
  /**
   * Longest a deferred request waits for KV before it is rejected, ms. A request with
   * `x-slo-ttft-ms` is rejected earlier, when it can no longer be placed in time for its SLO.
   * @default 30000
   */
  readonly maxWaitMs: number;
  /** Output tokens assumed when a request sets no `max_tokens`. @default 256 */
  readonly defaultMaxTokens: number;
  /** Least `Retry-After` of a 429, seconds (it is the predicted drain time of the queue when longer). @default 1 */
  readonly retryAfterS: number;
}

/**
 * P/D disaggregation settings (the `pd` section). P/D is active while the pool has a healthy
 * endpoint of role `prefill`; the decider and the SLO pair optimizer are the router's
 * (`Router.routePd`).
 */
export interface PdSettings {
  /**
   * `two-legs`: the gateway sends the prefill leg (`kv_transfer_params.do_remote_decode`,
   * `max_tokens: 1`) to the prefill endpoint, then the request with the returned
   * `kv_transfer_params` to the decode endpoint (vLLM's disaggregated proxy).
   * `prefiller-header`: the request goes to the decode endpoint alone with
   * `x-prefiller-host-port: host:port` of the prefill endpoint (llm-d's routing sidecar runs the legs).
   * `kvmgr epp` always answers with the header: it refuses `two-legs` given explicitly (see `modeGiven`).
   * @default 'two-legs'
   */
  readonly mode: 'two-legs' | 'prefiller-header';
  /** Whether the configuration set `pd.mode` (false: `mode` is the default). `kvmgr epp` refuses an explicit `two-legs`. @default false */
  readonly modeGiven?: boolean;
  /**
   * Prompt tokens not cached on the chosen decode endpoint from which prefill runs on a prefill
   * endpoint (below it the decode endpoint prefills alone); 0 turns P/D off. Written into
   * `routing.pd.nonCachedTokens`. @default routing.pd.nonCachedTokens (256)
   */
  readonly threshold: number;
  /** Pick the (prefill, decode) pair with the SLO pair optimizer for requests with `x-slo-ttft-ms`/`x-slo-tpot-ms`. Written into `routing.pd.sloPairs`. @default routing.pd.sloPairs (true) */
  readonly sloPairs: boolean;
}

/** The whole, resolved gateway configuration. */
export interface ResolvedGatewayConfig {
  /** @default '127.0.0.1' */
  readonly host: string;
  /** 0 = an ephemeral port. @default 8080 */
  readonly port: number;
  /** Model name of the block-key namespace (must equal what the engines serve). @default undefined */
  readonly model: string | undefined;
  /**
   * Tokenizer of prompt keys, footprints and chat rendering (the engines' model's, so that keys
   * match theirs). @default the one `model` implies (Llama 3.1 and 3.3 → `llama3.1`, 3.2 → `llama3.2`, 3 → `llama3`, Qwen2 → `qwen2`,
   * Qwen2.5 → `qwen2.5`, Qwen3 → `qwen3`), else `llama3.1` (DEFAULT_TOKENIZER)
   */
  readonly tokenizer: TokenizerName;
  /**
   * Where `tokenizer` came from: the `tokenizer` key, the `model` name, or the fallback (no key
   * and a model name that implies none: the gateway then warns at start, since keys that do not
   * match the engines' tokens find no cached prefix).
   */
  readonly tokenizerFrom: 'config' | 'model' | 'fallback';
  readonly endpoints: readonly EndpointConfig[];
  /** The router configuration (blockSize is the configured or default one; see `blockSizeFixed`). */
  readonly routing: ResolvedRouterConfig;
  /** True when `routing.blockSize` was set explicitly (else endpoints' reported block size wins). */
  readonly blockSizeFixed: boolean;
  readonly admission: AdmissionConfig;
  /** Largest request body, bytes (413 beyond). @default 4194304 */
  readonly maxBodyBytes: number;
  /** Upstream: connect + headers timeout, ms. @default 30000 */
  readonly upstreamHeadersTimeoutMs: number;
  /** Upstream: longest silence between body chunks, ms. @default 300000 */
  readonly upstreamBodyTimeoutMs: number;
  /** Attempts on other endpoints when an upstream fails before its first byte. @default 1 */
  readonly retries: number;
  /** Metrics scrape interval, ms. @default 1000 */
  readonly scrapeIntervalMs: number;
  /** Health probe interval, ms. @default 1000 */
  readonly healthIntervalMs: number;
  /** Consecutive failed probes or scrapes that take an endpoint out. @default 2 */
  readonly unhealthyThreshold: number;
  /** Log level of the pino logger. @default 'info' */
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Shared state of gateway replicas (docs/gateway-replicas.md); absent = this gateway alone. @default undefined */
  readonly redis?: RedisConfig | undefined;
  /** P/D disaggregation (see {@link PdSettings}). */
  readonly pd: PdSettings;
  /** Live A/B of two routing configurations (`ab.ts`); absent = every request uses `routing`. @default undefined */
  readonly ab?: ResolvedAbConfig | undefined;
  /** Tenants and their fairness in the DEFER queue (`tenants.ts`). @default resolveTenantsConfig(undefined) */
  readonly tenants?: TenantsConfig | undefined;
  /** `POST /v1/embeddings` and the LLM/embedding memory quotas (`embeddings.ts`); absent = no embeddings route. @default undefined */
  readonly embeddings?: EmbeddingsConfig | undefined;
}

function badConfig(key: string, message: string, cause?: unknown): KvmgrError {
  return new KvmgrError('KVMGR_BAD_CONFIG', `${key === '' ? 'gateway config' : key}: ${message}`, cause === undefined ? { details: { key } } : { details: { key }, cause });
}

/** `a.b[2].c` from a zod issue path. */
function keyPath(prefix: string, path: readonly PropertyKey[]): string {
  let s = prefix;
  for (const p of path) s += typeof p === 'number' ? `[${p}]` : s === '' ? String(p) : `.${String(p)}`;
  return s;
}

const zmqEndpoint = z.string().regex(/^(tcp|ipc|inproc):\/\/\S+$/, 'expected a ZMQ endpoint such as tcp://10.0.0.5:5557');
const posInt = z.number().int().min(1);

/** Schema of one endpoint as written in the file or posted to `/admin/endpoints`. */
export const EndpointInputSchema = z.strictObject({
  url: urlString,
  name: z.string().min(1).optional(),
  engine: z.enum(['vllm', 'sglang', 'tgi', 'lmdeploy', 'kvmgr']).optional(),
  role: z.enum(['both', 'prefill', 'decode']).optional(),
  metricsUrl: urlString.optional(),
  kvEvents: zmqEndpoint.optional(),
  replay: zmqEndpoint.optional(),
  blockSize: posInt.optional(),
  kvCapacityTokens: posInt.optional(),
});
/** An endpoint as given by a user. */
export type EndpointInput = z.infer<typeof EndpointInputSchema>;

const schema = z.strictObject({
  server: z
    .strictObject({
      host: z.string().min(1).optional(),
      port: z.number().int().min(0).max(65535).optional(),
      maxBodyBytes: posInt.optional(),
      upstreamHeadersTimeoutMs: posInt.optional(),
      upstreamBodyTimeoutMs: posInt.optional(),
      retries: z.number().int().min(0).max(8).optional(),
      logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).optional(),
    })
    .optional(),
  model: z.string().min(1).optional(),
  tokenizer: z.enum(TOKENIZER_NAMES, { error: (iss) => `unknown tokenizer ${JSON.stringify(iss.input)}: expected one of ${TOKENIZER_NAMES.join(', ')}` }).optional(),
  endpoints: z.array(EndpointInputSchema).optional(),
  routing: z.unknown().optional(),
  ab: z.unknown().optional(),
  tenants: z.unknown().optional(),
  embeddings: z.unknown().optional(),
  health: z.strictObject({ intervalMs: posInt.optional(), unhealthyThreshold: posInt.optional() }).optional(),
  scrape: z.strictObject({ intervalMs: posInt.optional() }).optional(),
  admission: z
    .strictObject({
      enabled: z.boolean().optional(),
      maxQueue: z.number().int().min(0).optional(),
      maxWaitMs: posInt.optional(),
      defaultMaxTokens: posInt.optional(),
      retryAfterS: posInt.optional(),
    })
    .optional(),
  pd: z
    .strictObject({
      mode: z.enum(['two-legs', 'prefiller-header']).optional(),
      threshold: z.number().int().min(0).optional(),
      sloPairs: z.boolean().optional(),
    })
    .optional(),
  // llm-d EndpointPickerConfig header fields, accepted and ignored
  redis: z
    .union([
      z.string(),
      z.strictObject({
        url: z.string(),
        namespace: z.string().regex(/^[^{}]+$/, 'no { or }').optional(),
        replicaId: z.string().min(1).optional(),
        commandTimeoutMs: posInt.optional(),
        leaseTtlMs: posInt.optional(),
        leaseRenewMs: posInt.optional(),
        loadTtlMs: posInt.optional(),
        maxKeysPerEndpoint: posInt.optional(),
      }),
    ])
    .refine((r) => /^rediss?:\/\/\S+$/.test(typeof r === 'string' ? r : r.url), 'expected a redis:// or rediss:// URL')
    .optional(),
  apiVersion: z.string().optional(),
  kind: z.string().optional(),
});

/** The object form of a gateway configuration (what the YAML parses into). */
export type GatewayConfigInput = z.input<typeof schema>;

/**
 * Resolves one endpoint (defaults filled in).
 *
 * @param e - the endpoint as given.
 * @param key - its key in the config, for messages. @default 'endpoint'
 * @throws KvmgrError `KVMGR_BAD_CONFIG` naming the bad field.
 */
export function resolveEndpoint(e: unknown, key = 'endpoint'): EndpointConfig {
  const r = EndpointInputSchema.safeParse(e);
  if (!r.success) {
    const issue = r.error.issues[0];
    const extra = issue !== undefined && 'keys' in issue ? ` (${(issue.keys as string[]).join(', ')})` : '';
    throw badConfig(keyPath(key, issue?.path ?? []), `${issue?.message ?? 'invalid'}${extra}`);
  }
  const v = r.data;
  const url = v.url.replace(/\/+$/, '');
  if (v.replay !== undefined && v.kvEvents === undefined) throw badConfig(`${key}.replay`, 'a replay endpoint needs kvEvents too');
  return {
    name: v.name ?? new URL(url).host,
    url,
    engine: v.engine ?? 'vllm',
    role: v.role ?? 'both',
    metricsUrl: v.metricsUrl ?? `${url}/metrics`,
    kvEvents: v.kvEvents ?? null,
    replay: v.replay ?? null,
    blockSize: v.blockSize ?? null,
    kvCapacityTokens: v.kvCapacityTokens ?? null,
  };
}

/** llm-d plugin types → kvmgr scorer names. */
const LLMD_SCORERS: Readonly<Record<string, string>> = Object.freeze({
  'prefix-cache-scorer': 'prefix-affinity',
  'precise-prefix-cache-scorer': 'prefix-affinity',
  'queue-scorer': 'queue-depth',
  'kv-cache-utilization-scorer': 'kv-utilization',
  'load-aware-scorer': 'load-aware',
  'active-request-scorer': 'active-requests',
  'no-hit-lru-scorer': 'no-hit-lru',
});
const LLMD_PICKERS: Readonly<Record<string, RouterConfig['picker'] | 'random'>> = Object.freeze({
  'max-score-picker': 'max',
  'weighted-random-picker': 'weighted-random',
  'random-picker': 'random',
});

const pluginSchema = z.strictObject({ type: z.string(), name: z.string().optional(), parameters: z.record(z.string(), z.unknown()).optional() });
const profileSchema = z.strictObject({
  name: z.string().optional(),
  plugins: z.array(z.strictObject({ pluginRef: z.string(), weight: z.number().optional() })),
});

/** Translates llm-d's `plugins` + `schedulingProfiles` into a router configuration. */
function fromEndpointPicker(r: Record<string, unknown>): RouterConfig {
  const { plugins, schedulingProfiles, ...rest } = r;
  const ps = z.array(pluginSchema).safeParse(plugins ?? []);
  if (!ps.success) throw badConfig(keyPath('routing.plugins', ps.error.issues[0]?.path ?? []), ps.error.issues[0]?.message ?? 'invalid');
  const profiles = z.array(profileSchema).min(1).max(1, 'one scheduling profile (P/D profiles are not supported yet)').safeParse(schedulingProfiles ?? []);
  if (!profiles.success) {
    throw badConfig(keyPath('routing.schedulingProfiles', profiles.error.issues[0]?.path ?? []), profiles.error.issues[0]?.message ?? 'invalid');
  }
  const byName = new Map<string, { type: string; parameters: Record<string, unknown> }>();
  for (const p of ps.data) byName.set(p.name ?? p.type, { type: p.type, parameters: p.parameters ?? {} });
  const scorers: { name: string; weight: number; params?: Record<string, number> }[] = [];
  let picker: RouterConfig['picker'];
  let strategy: RouterConfig['strategy'];
  const profile = profiles.data[0] as z.infer<typeof profileSchema>;
  profile.plugins.forEach((ref, i) => {
    const key = `routing.schedulingProfiles[0].plugins[${i}]`;
    const plugin = byName.get(ref.pluginRef);
    if (plugin === undefined) throw badConfig(`${key}.pluginRef`, `unknown plugin ${JSON.stringify(ref.pluginRef)}; declare it under routing.plugins`);
    const pick = Object.hasOwn(LLMD_PICKERS, plugin.type) ? LLMD_PICKERS[plugin.type] : undefined;
    if (pick !== undefined) {
      if (pick === 'random') strategy = 'random';
      else picker = pick;
      return;
    }
    const name = Object.hasOwn(LLMD_SCORERS, plugin.type) ? (LLMD_SCORERS[plugin.type] as string) : plugin.type;
    const weight = ref.weight ?? 1;
    if (!Number.isFinite(weight) || weight < 0) throw badConfig(`${key}.weight`, `weight must be a finite number >= 0, got ${weight}`);
    const params: Record<string, number> = {};
    for (const [k, v] of Object.entries(plugin.parameters)) if (typeof v === 'number') params[k] = v;
    scorers.push(Object.keys(params).length > 0 ? { name, weight, params } : { name, weight });
  });
  return { ...(rest as RouterConfig), scorers, ...(picker === undefined ? {} : { picker }), ...(strategy === undefined ? {} : { strategy }) };
}

/**
 * Validates a routing configuration: a preset or weight string, the router's object form, or
 * llm-d's `plugins` + `schedulingProfiles`.
 *
 * @param routing - the `routing` value. @default 'llm-d-default' (`pa:3,qd:2,kv:2`)
 * @param model - the key namespace's model, written into the router config when it has none.
 * @param pd - the gateway's P/D settings, written into `pd.nonCachedTokens` / `pd.sloPairs` when
 *   `routing` does not set them itself (so `PUT /admin/routing` keeps the gateway's threshold). @default none
 * @throws KvmgrError `KVMGR_BAD_CONFIG`, message starting with `routing…:`.
 */
export function resolveRouting(routing: unknown, model?: string, pd?: Pick<PdSettings, 'threshold' | 'sloPairs'>): { config: ResolvedRouterConfig; blockSizeFixed: boolean } {
  const r = resolveRoutingOnly(routing, model);
  if (pd === undefined) return r;
  const given = typeof routing === 'object' && routing !== null ? (routing as { pd?: { nonCachedTokens?: unknown; sloPairs?: unknown } }).pd : undefined;
  const p = r.config.pd;
  const next = { ...p, nonCachedTokens: given?.nonCachedTokens === undefined ? pd.threshold : p.nonCachedTokens, sloPairs: given?.sloPairs === undefined ? pd.sloPairs : p.sloPairs };
  return { config: { ...r.config, pd: next }, blockSizeFixed: r.blockSizeFixed };
}

function resolveRoutingOnly(routing: unknown, model?: string): { config: ResolvedRouterConfig; blockSizeFixed: boolean } {
  try {
    let resolved: ResolvedRouterConfig;
    let blockSizeFixed = false;
    if (routing === undefined || routing === null) resolved = parseRouterConfig('llm-d-default');
    else if (typeof routing === 'string') resolved = parseRouterConfig(routing);
    else if (typeof routing === 'object' && !Array.isArray(routing)) {
      const r = routing as Record<string, unknown>;
      const obj = 'plugins' in r || 'schedulingProfiles' in r ? fromEndpointPicker(r) : (r as RouterConfig);
      blockSizeFixed = obj.blockSize !== undefined;
      resolved = resolveRouterConfig(obj.scorers === undefined && obj.strategy === undefined ? { ...obj, scorers: 'pa:3,qd:2,kv:2' } : obj);
    } else throw badConfig('routing', 'expected a preset name, a weight string like "pa:3,qd:2,kv:2", or a mapping');
    if (resolved.model === undefined && model !== undefined) resolved = { ...resolved, model };
    // the gateway never reports actual latencies back (Router.recordActual), so unless asked for,
    // predictions would only fill the router's pending map (65,536 entries of garbage for the GC)
    const askedToRecord = typeof routing === 'object' && routing !== null && (routing as { recordPredictions?: unknown }).recordPredictions !== undefined;
    if (!askedToRecord && resolved.recordPredictions) resolved = { ...resolved, recordPredictions: false };
    return { config: resolved, blockSizeFixed };
  } catch (e) {
    if (isKvmgrError(e) && typeof e.details?.['key'] === 'string') throw e;
    const token = isKvmgrError(e) ? e.details?.['token'] : undefined;
    // the router names a field path (`scorers.0.weight`) or a weight token (`foo:1`)
    const msg = (e as Error).message.replace(/^router config (field "[^"]*" )?(is invalid: )?/, '').split('\n')[0] as string;
    const field =
      typeof token === 'string' && /^[A-Za-z][A-Za-z0-9.]*$/.test(token) && !/scorer/.test(msg)
        ? `routing.${token.replace(/\.(\d+)/g, '[$1]')}`
        : typeof routing === 'object' && routing !== null && /scorer/.test(msg)
          ? 'routing.scorers'
          : 'routing';
    throw badConfig(field, msg, e);
  }
}

function parseYaml(text: string): unknown {
  const doc = parseDocument(text, { logLevel: 'silent', uniqueKeys: true });
  const problem = doc.errors[0] ?? doc.warnings[0];
  if (problem !== undefined) throw badConfig('', `YAML does not parse: ${problem.message.split('\n')[0]}`);
  return doc.toJS({ maxAliasCount: 100 });
}

/**
 * Validates a gateway configuration object and fills in defaults.
 *
 * @param input - the object form (see `docs/gateway.md` for every key).
 * @returns the resolved configuration.
 * @throws KvmgrError `KVMGR_BAD_CONFIG` whose one-line message starts with the bad key: unknown
 *   keys, bad types, a bad URL, a duplicate endpoint (same name or URL), an unknown scorer, a
 *   weight < 0.
 */
export function resolveGatewayConfig(input: unknown): ResolvedGatewayConfig {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) throw badConfig('', 'expected a mapping');
  const r = schema.safeParse(input);
  if (!r.success) {
    const issue = r.error.issues[0];
    const extra = issue !== undefined && 'keys' in issue ? ` (${(issue.keys as string[]).join(', ')})` : '';
    throw badConfig(keyPath('', issue?.path ?? []), `${issue?.message ?? 'invalid'}${extra}`);
  }
  const c = r.data;
  const endpoints = (c.endpoints ?? []).map((e, i) => resolveEndpoint(e, `endpoints[${i}]`));
  const byName = new Map<string, number>();
  const byUrl = new Map<string, number>();
  endpoints.forEach((e, i) => {
    const u = byUrl.get(e.url);
    if (u !== undefined) throw badConfig(`endpoints[${i}].url`, `duplicate endpoint ${JSON.stringify(e.url)} (also endpoints[${u}])`);
    const n = byName.get(e.name);
    if (n !== undefined) throw badConfig(`endpoints[${i}].name`, `duplicate endpoint ${JSON.stringify(e.name)} (also endpoints[${n}])`);
    byName.set(e.name, i);
    byUrl.set(e.url, i);
  });
  const plain = resolveRouting(c.routing, c.model);
  const pd: PdSettings = {
    mode: c.pd?.mode ?? 'two-legs',
    modeGiven: c.pd?.mode !== undefined,
    threshold: c.pd?.threshold ?? plain.config.pd.nonCachedTokens,
    sloPairs: c.pd?.sloPairs ?? plain.config.pd.sloPairs,
  };
  // the gateway's pd section wins over routing.pd (it is the one documented for kvmgr serve)
  const routing: ResolvedRouterConfig = { ...plain.config, pd: { ...plain.config.pd, nonCachedTokens: pd.threshold, sloPairs: pd.sloPairs } };
  const blockSizeFixed = plain.blockSizeFixed;
  const impliedTokenizer = c.model === undefined ? undefined : tokenizerNameForModel(c.model);
  const s = c.server ?? {};
  const a = c.admission ?? {};
  return {
    host: s.host ?? '127.0.0.1',
    port: s.port ?? 8080,
    model: c.model,
    tokenizer: c.tokenizer ?? impliedTokenizer ?? DEFAULT_TOKENIZER,
    tokenizerFrom: c.tokenizer !== undefined ? 'config' : impliedTokenizer !== undefined ? 'model' : 'fallback',
    endpoints,
    routing,
    blockSizeFixed,
    admission: {
      enabled: a.enabled ?? true,
      maxQueue: a.maxQueue ?? 256,
      maxWaitMs: a.maxWaitMs ?? 30_000,
      defaultMaxTokens: a.defaultMaxTokens ?? 256,
      retryAfterS: a.retryAfterS ?? 1,
    },
    maxBodyBytes: s.maxBodyBytes ?? 4 * 1024 * 1024,
    upstreamHeadersTimeoutMs: s.upstreamHeadersTimeoutMs ?? 30_000,
    upstreamBodyTimeoutMs: s.upstreamBodyTimeoutMs ?? 300_000,
    retries: s.retries ?? 1,
    scrapeIntervalMs: c.scrape?.intervalMs ?? 1000,
    healthIntervalMs: c.health?.intervalMs ?? 1000,
    unhealthyThreshold: c.health?.unhealthyThreshold ?? 2,
    logLevel: s.logLevel ?? 'info',
    redis: resolveRedis(c.redis, c.model),
    pd,
    ab: c.ab === undefined || c.ab === null ? undefined : resolveAbConfig(c.ab, c.model, 'ab', pd),
    tenants: resolveTenantsConfig(c.tenants),
    embeddings: c.embeddings === undefined || c.embeddings === null ? undefined : resolveEmbeddingsConfig(c.embeddings),
  };
}

function resolveRedis(r: z.output<typeof schema>['redis'], model: string | undefined): RedisConfig | undefined {
  if (r === undefined) return undefined;
  const o = typeof r === 'string' ? { url: r } : r;
  const ttl = o.leaseTtlMs ?? 3000;
  const renew = o.leaseRenewMs ?? Math.min(1000, Math.floor(ttl / 3));
  if (renew >= ttl) throw badConfig('redis.leaseRenewMs', `must be less than leaseTtlMs (${ttl}), got ${renew}`);
  return {
    url: o.url,
    namespace: o.namespace ?? (model === undefined ? 'default' : model.replace(/[{}]/g, '_')),
    replicaId: o.replicaId ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`,
    commandTimeoutMs: o.commandTimeoutMs ?? 50,
    leaseTtlMs: ttl,
    leaseRenewMs: renew,
    loadTtlMs: o.loadTtlMs ?? 5000,
    maxKeysPerEndpoint: o.maxKeysPerEndpoint ?? 1 << 20,
  };
}

/**
 * Reads a gateway configuration file's YAML into its object form, unvalidated (for callers that
 * merge flags over it before {@link resolveGatewayConfig}).
 *
 * @throws KvmgrError `KVMGR_BAD_CONFIG` when the YAML does not parse (duplicate keys included)
 *   or is not a mapping.
 */
export function readGatewayConfigYaml(text: string): Record<string, unknown> {
  const v = text.trim() === '' ? {} : parseYaml(text);
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw badConfig('', 'expected a YAML mapping at the top level');
  return v as Record<string, unknown>;
}

/**
 * Parses a gateway configuration from YAML (JSON is YAML too).
 *
 * @param text - the file's text.
 * @throws KvmgrError `KVMGR_BAD_CONFIG` as {@link resolveGatewayConfig}, or when the YAML does
 *   not parse (duplicate keys included).
 */
export function parseGatewayConfig(text: string): ResolvedGatewayConfig {
  return resolveGatewayConfig(parseYaml(text));
}

/**
 * Parses a routing configuration given over HTTP or on the command line: YAML/JSON text, a
 * preset or a weight string, or an already-decoded object.
 *
 * @param pd - the gateway's P/D settings, kept unless the input sets `pd.nonCachedTokens` / `pd.sloPairs` (see {@link resolveRouting}). @default none
 *
 * @throws KvmgrError `KVMGR_BAD_CONFIG` naming the bad key.
 */
export function parseRoutingInput(input: unknown, model?: string, pd?: Pick<PdSettings, 'threshold' | 'sloPairs'>): { config: ResolvedRouterConfig; blockSizeFixed: boolean } {
  if (typeof input === 'string') {
    const t = input.trim();
    if (t.includes('\n') || t.startsWith('{')) return resolveRouting(parseYaml(t), model, pd);
    return resolveRouting(t, model, pd);
  }
  return resolveRouting(input, model, pd);
}
