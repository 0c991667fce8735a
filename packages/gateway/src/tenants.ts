/**
 * Per-tenant fairness at the gateway: who a request belongs to (a configurable header, else a
 * hash of its API key, else `anonymous`), the Virtual Token Counter of each tenant
 * (`@kvmgr/eviction`'s {@link VirtualTokenCounter}: weighted input + output tokens served,
 * divided by the tenant's weight; a tenant that becomes backlogged is lifted to the smallest
 * counter of the backlogged ones, so idling earns no credit), and per-tenant metrics with a
 * bounded label set. The DEFER queues (`admission.ts`: the LLM one, and the embedding one of
 * `embeddings.ts`) ask it which tenant has received the least service; within one SLO class and
 * priority that tenant's request is released first. Both kinds of request charge the same counter.
 *
 * Charging at the gateway: a request's prompt tokens when it is placed (so the next release
 * in the same loop sees them), its completion tokens from `usage` when it finishes.
 *
 * @see Y. Sheng et al., "Fairness in Serving Large Language Models", OSDI 2024 (VTC).
 */
import { createHash } from 'node:crypto';
import { type OpenAiErrorResponse, openAiError } from '@kvmgr/adapter-vllm';
import { VirtualTokenCounter } from '@kvmgr/eviction';
import { Gauge, type Registry } from 'prom-client';
import { z } from 'zod';
import { sectionError } from './config-error.js';
import type { AdmissionFairness } from './admission.js';

/** The `tenants` section of the gateway configuration, resolved. */
export interface TenantsConfig {
  /** Order the DEFER queue by tenant service within an SLO class and priority. @default true */
  readonly enabled: boolean;
  /**
   * Request header that names the tenant (lower-case), or null to ignore headers. Set it only
   * behind a proxy that sets (or strips) the header: a client can write any value.
   * @default 'x-tenant-id'
   */
  readonly header: string | null;
  /** Without the header, a tenant per API key (`Authorization: Bearer …`, SHA-256, never kept in clear). @default true */
  readonly apiKey: boolean;
  /** VTC service per prompt token. @default 1 */
  readonly inputWeight: number;
  /** VTC service per completion token. @default 2 */
  readonly outputWeight: number;
  /** Share weights by tenant id (a header value, or `key:<12 hex>` for an API key); others weigh 1. @default {} */
  readonly weights: Readonly<Record<string, number>>;
  /** Tenants with their own metric label (by service received); the rest are summed as `other`. @default 10 */
  readonly metricsTopN: number;
  /** Tenants remembered; beyond it, counters start over the next time no request is queued. @default 10000 */
  readonly maxTenants: number;
}

const tenantsSchema = z.strictObject({
  enabled: z.boolean().optional(),
  header: z
    .union([z.string().regex(/^[A-Za-z0-9-]{1,64}$/, 'expected an HTTP header name'), z.literal(false), z.null()])
    .optional(),
  apiKey: z.boolean().optional(),
  inputWeight: z.number().min(0).optional(),
  outputWeight: z.number().min(0).optional(),
  weights: z.record(z.string().min(1), z.number().positive()).optional(),
  metricsTopN: z.number().int().min(0).max(1000).optional(),
  maxTenants: z.number().int().min(1).optional(),
});

/**
 * Validates the `tenants` section.
 *
 * @param input - the section's value; undefined gives the defaults.
 * @param key - the section's key, for messages. @default 'tenants'
 * @throws KvmgrError `KVMGR_BAD_CONFIG` whose one-line message starts with the bad key
 *   (`tenants.weights.acme: Too small: …`).
 */
export function resolveTenantsConfig(input: unknown, key = 'tenants'): TenantsConfig {
  const r = tenantsSchema.safeParse(input ?? {});
  if (!r.success) {
    throw sectionError(key, r.error);
  }
  const v = r.data;
  return {
    enabled: v.enabled ?? true,
    header: v.header === false || v.header === null ? null : (v.header ?? 'x-tenant-id').toLowerCase(),
    apiKey: v.apiKey ?? true,
    inputWeight: v.inputWeight ?? 1,
    outputWeight: v.outputWeight ?? 2,
    weights: v.weights ?? {},
    metricsTopN: v.metricsTopN ?? 10,
    maxTenants: v.maxTenants ?? 10_000,
  };
}

/** The tenant of requests with neither the header nor an API key. */
export const ANONYMOUS_TENANT = 'anonymous';

/** `key:` + the first 12 hex digits of SHA-256 of an API key: the tenant id of that key. */
export function apiKeyTenant(apiKey: string): string {
  return `key:${createHash('sha256').update(apiKey).digest('hex').slice(0, 12)}`;
}

/** Per-tenant tallies, as `/admin/state` and the metrics show them. */
export interface TenantStats {
  readonly tenant: string;
  /** Requests seen (admitted, deferred or refused). */
  requests: number;
  deferred: number;
  rejected: number;
  /** Requests of the tenant in the DEFER queues (LLM and embedding) now. */
  queued: number;
  /** Weighted service received (input · inputWeight + output · outputWeight), tokens. */
  service: number;
  /** VTC counter (service / weight, with lifts). */
  counter: number;
}

/**
 * Tenants of one gateway: identification, VTC counters, tallies and metrics. Implements the
 * DEFER queue's {@link AdmissionFairness}.
 */
export class TenantFairness implements AdmissionFairness {
  readonly config: TenantsConfig;
  private vtc: VirtualTokenCounter;
  private stats = new Map<string, TenantStats>();
  private queuedTotal = 0;

  /** @param config - the resolved `tenants` section. */
  constructor(config: TenantsConfig) {
    this.config = config;
    this.vtc = new VirtualTokenCounter({ inputWeight: config.inputWeight, outputWeight: config.outputWeight });
  }

  /**
   * The tenant of a request: the configured header's value, else `key:<hash>` of the bearer
   * token, else {@link ANONYMOUS_TENANT}.
   *
   * @param headers - request headers (lower-case names).
   * @returns the tenant id, or a 400 OpenAI error when the header is not 1–128 visible ASCII characters.
   */
  tenantOf(headers: Readonly<Record<string, string | string[] | undefined>>): string | OpenAiErrorResponse {
    if (this.config.header !== null) {
      const h = headers[this.config.header];
      const v = Array.isArray(h) ? h[0] : h;
      if (v !== undefined) {
        if (!/^[\x21-\x7e]{1,128}$/.test(v)) {
          return openAiError(400, `header ${this.config.header}: expected a tenant id of 1-128 visible ASCII characters, got ${JSON.stringify(v.slice(0, 40))}`, { param: this.config.header, code: 'invalid_value' });
        }
        return v;
      }
    }
    if (this.config.apiKey) {
      const auth = headers['authorization'];
      const a = Array.isArray(auth) ? auth[0] : auth;
      const m = a === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(a);
      if (m !== null) return apiKeyTenant(m[1] as string);
    }
    return ANONYMOUS_TENANT;
  }

  private ensure(tenant: string): TenantStats {
    let s = this.stats.get(tenant);
    if (s !== undefined) return s;
    if (this.stats.size >= this.config.maxTenants && this.queuedTotal === 0) {
      // nothing is backlogged, so no lift depends on the counters: start over to bound memory
      this.vtc = new VirtualTokenCounter({ inputWeight: this.config.inputWeight, outputWeight: this.config.outputWeight });
      this.stats = new Map();
    }
    this.vtc.addTenant(tenant, this.config.weights[tenant] ?? 1);
    s = { tenant, requests: 0, deferred: 0, rejected: 0, queued: 0, service: 0, counter: 0 };
    this.stats.set(tenant, s);
    return s;
  }

  /** Counts a request of `tenant` arriving. */
  arrived(tenant: string): void {
    this.ensure(tenant).requests++;
  }

  /** Counts a refused request of `tenant`. */
  rejected(tenant: string): void {
    this.ensure(tenant).rejected++;
  }

  /** VTC counter of a tenant (0 for an unknown one). */
  counter(tenant: string): number {
    return this.stats.has(tenant) ? this.vtc.counter(tenant) : 0;
  }

  /** A request of `tenant` entered the DEFER queue: the tenant becomes backlogged (lifted to the least backlogged counter). */
  enqueued(tenant: string): void {
    const s = this.ensure(tenant);
    s.deferred++;
    s.queued++;
    this.queuedTotal++;
    if (s.queued === 1) this.vtc.setBacklogged(tenant, true);
  }

  /** A request of `tenant` left the DEFER queue (placed or refused). */
  dequeued(tenant: string): void {
    const s = this.stats.get(tenant);
    if (s === undefined || s.queued === 0) return;
    s.queued--;
    this.queuedTotal--;
    if (s.queued === 0) this.vtc.setBacklogged(tenant, false);
  }

  /**
   * Charges service to a tenant.
   *
   * @param inputTokens - prompt tokens (charged at placement).
   * @param outputTokens - completion tokens (charged when the request finishes).
   */
  charge(tenant: string, inputTokens: number, outputTokens: number): void {
    const s = this.ensure(tenant);
    const i = Math.max(0, inputTokens);
    const o = Math.max(0, outputTokens);
    this.vtc.charge(tenant, i, o);
    s.service += this.config.inputWeight * i + this.config.outputWeight * o;
  }

  /**
   * Tenants by service received, largest first.
   *
   * @param topN - tenants listed; the rest are summed into one `other` row. @default all
   */
  summary(topN = Number.POSITIVE_INFINITY): TenantStats[] {
    const all = [...this.stats.values()].map((s) => ({ ...s, counter: this.vtc.counter(s.tenant) }));
    all.sort((a, b) => b.service - a.service || (a.tenant < b.tenant ? -1 : 1));
    if (all.length <= topN) return all;
    const other: TenantStats = { tenant: 'other', requests: 0, deferred: 0, rejected: 0, queued: 0, service: 0, counter: Number.NaN };
    for (const s of all.slice(topN)) {
      other.requests += s.requests;
      other.deferred += s.deferred;
      other.rejected += s.rejected;
      other.queued += s.queued;
      other.service += s.service;
    }
    return [...all.slice(0, topN), other];
  }

  /**
   * Registers `kvmgr_gateway_tenant_{requests,deferred,rejected,queued,service_tokens}{tenant}`:
   * gauges set at scrape time from the top `metricsTopN` tenants by service, the rest as `other`
   * (the label set stays bounded; a tenant's series moves to `other` when it leaves the top).
   */
  registerMetrics(registry: Registry): void {
    const fields = [
      ['requests', 'Requests seen per tenant (top tenants by service; the rest as "other").'],
      ['deferred', 'Requests deferred per tenant.'],
      ['rejected', 'Requests refused per tenant.'],
      ['queued', 'Requests of the tenant in the DEFER queue now.'],
      ['service', 'Weighted tokens served per tenant (VTC service: input x inputWeight + output x outputWeight).'],
    ] as const;
    const self = this;
    for (const [field, help] of fields) {
      new Gauge({
        name: field === 'service' ? 'kvmgr_gateway_tenant_service_tokens' : `kvmgr_gateway_tenant_${field}`,
        help,
        labelNames: ['tenant'],
        registers: [registry],
        collect() {
          this.reset();
          for (const s of self.summary(self.config.metricsTopN)) this.set({ tenant: s.tenant }, s[field]);
        },
      });
    }
  }
}
