import { isKvmgrError } from '@kvmgr/core';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { AdmissionQueue } from './admission.js';
import { ANONYMOUS_TENANT, TenantFairness, apiKeyTenant, resolveTenantsConfig } from './tenants.js';

/**
 * A DEFER queue over `slots` free places: every request is deferred while `slots` is 0, then
 * released one by one; `placed` records the order in which `place()` succeeded.
 */
function harness(fair: TenantFairness | undefined) {
  const q = new AdmissionQueue<string>(100, 60_000, fair === undefined ? {} : { fairness: fair });
  const state = { slots: 0 };
  const placed: string[] = [];
  const admit = (tenant: string, id: string, prompt = 100) => {
    fair?.arrived(tenant);
    return q.admit({ sloClass: 'standard', priority: 0, deadlineMs: Number.POSITIVE_INFINITY, footprintTokens: prompt, tenant }, () => {
      if (state.slots === 0) return undefined;
      state.slots--;
      placed.push(id);
      fair?.charge(tenant, prompt, 0);
      return id;
    });
  };
  const releaseAll = async (n: number) => {
    for (let i = 0; i < n; i++) {
      state.slots = 1;
      q.release();
    }
    await Promise.resolve();
  };
  return { q, state, placed, admit, releaseAll };
}

describe('the DEFER queue with VTC fairness', () => {
  it('a quiet tenant is released ahead of a flooding tenant’s backlog (alternating at equal cost)', async () => {
    const fair = new TenantFairness(resolveTenantsConfig({}));
    const h = harness(fair);
    const all: Promise<unknown>[] = [];
    for (let i = 0; i < 6; i++) all.push(h.admit('flood', `f${i}`));
    for (let i = 0; i < 2; i++) all.push(h.admit('quiet', `q${i}`));
    expect(h.q.depth).toBe(8);
    expect(fair.summary().find((s) => s.tenant === 'quiet')?.queued).toBe(2);
    await h.releaseAll(8);
    await Promise.all(all);
    // quiet is lifted to flood's counter when it becomes backlogged (tie → arrival order), then
    // whoever has received less goes next
    expect(h.placed).toEqual(['f0', 'q0', 'f1', 'q1', 'f2', 'f3', 'f4', 'f5']);
    expect(fair.summary().map((s) => [s.tenant, s.queued, s.service])).toEqual([
      ['flood', 0, 600],
      ['quiet', 0, 200],
    ]);
  });

  it('without fairness the same arrivals are released in arrival order (the quiet tenant last)', async () => {
    const h = harness(undefined);
    const all: Promise<unknown>[] = [];
    for (let i = 0; i < 6; i++) all.push(h.admit('flood', `f${i}`));
    for (let i = 0; i < 2; i++) all.push(h.admit('quiet', `q${i}`));
    await h.releaseAll(8);
    await Promise.all(all);
    expect(h.placed).toEqual(['f0', 'f1', 'f2', 'f3', 'f4', 'f5', 'q0', 'q1']);
  });

  it('a tenant joining the backlog is lifted to the least backlogged counter: no credit for idling, it alternates instead of jumping the whole backlog', async () => {
    const fair = new TenantFairness(resolveTenantsConfig({}));
    const h = harness(fair);
    h.state.slots = 3;
    await Promise.all([h.admit('flood', 'f0'), h.admit('flood', 'f1'), h.admit('flood', 'f2')]); // admitted at once, 300 served
    const all = [h.admit('flood', 'f3'), h.admit('flood', 'f4'), h.admit('fresh', 'n0'), h.admit('fresh', 'n1')];
    await h.releaseAll(4);
    await Promise.all(all);
    // fresh joins a backlog whose only tenant (flood, 300) is the minimum: lifted from 0 to 300; tie → flood's older request
    expect(h.placed.slice(3)).toEqual(['f3', 'n0', 'f4', 'n1']);
    expect(fair.counter('fresh')).toBe(500);
  });

  it('history counts among backlogged tenants: the one served less goes first until it catches up', async () => {
    const fair = new TenantFairness(resolveTenantsConfig({}));
    const h = harness(fair);
    h.state.slots = 4;
    await Promise.all([h.admit('heavy', 'h0'), h.admit('heavy', 'h1'), h.admit('heavy', 'h2'), h.admit('light', 'l0')]); // heavy 300, light 100, none waiting
    const all = [h.admit('light', 'l1'), h.admit('heavy', 'h3'), h.admit('light', 'l2'), h.admit('light', 'l3'), h.admit('light', 'l4')];
    await h.releaseAll(5);
    await Promise.all(all);
    // light (100) is backlogged first; heavy (300) joins above it and is not lifted; light goes until it reaches 300
    expect(h.placed.slice(4)).toEqual(['l1', 'l2', 'h3', 'l3', 'l4']);
  });

  it('weights: a tenant of weight 2 gets twice the service before the other goes', async () => {
    const fair = new TenantFairness(resolveTenantsConfig({ weights: { gold: 2 } }));
    const h = harness(fair);
    const all: Promise<unknown>[] = [];
    for (let i = 0; i < 4; i++) all.push(h.admit('gold', `g${i}`));
    for (let i = 0; i < 4; i++) all.push(h.admit('base', `b${i}`));
    await h.releaseAll(8);
    await Promise.all(all);
    expect(h.placed).toEqual(['g0', 'b0', 'g1', 'g2', 'b1', 'g3', 'b2', 'b3']);
  });

  it('fairness stays within an SLO class: a critical request of the flooder still goes before standard ones', async () => {
    const fair = new TenantFairness(resolveTenantsConfig({}));
    const q = new AdmissionQueue<string>(100, 60_000, { fairness: fair });
    let slots = 0;
    const placed: string[] = [];
    const admit = (tenant: string, id: string, sloClass: 'critical' | 'standard') =>
      q.admit({ sloClass, priority: 0, deadlineMs: Number.POSITIVE_INFINITY, footprintTokens: 10, tenant }, () => {
        if (slots === 0) return undefined;
        slots--;
        placed.push(id);
        fair.charge(tenant, 1000, 0);
        return id;
      });
    const all = [admit('quiet', 'q0', 'standard'), admit('flood', 'f0', 'critical'), admit('flood', 'f1', 'critical')];
    for (let i = 0; i < 3; i++) {
      slots = 1;
      q.release();
    }
    await Promise.all(all);
    expect(placed).toEqual(['f0', 'f1', 'q0']);
  });

  it('a refused waiter leaves the backlog too', async () => {
    const fair = new TenantFairness(resolveTenantsConfig({}));
    const q = new AdmissionQueue<string>(100, 60_000, { fairness: fair });
    const p = q.admit({ sloClass: 'standard', priority: 0, deadlineMs: Number.POSITIVE_INFINITY, tenant: 't' }, () => undefined);
    expect(fair.summary()[0]?.queued).toBe(1);
    q.close();
    await expect(p).rejects.toMatchObject({ reason: 'closed' });
    expect(fair.summary()[0]?.queued).toBe(0);
  });
});

describe('TenantFairness', () => {
  it('tenant from the header, else a hash of the API key, else anonymous', () => {
    const t = new TenantFairness(resolveTenantsConfig({}));
    expect(t.tenantOf({ 'x-tenant-id': 'acme', authorization: 'Bearer sk-1' })).toBe('acme');
    const k = t.tenantOf({ authorization: 'Bearer sk-secret-123' });
    expect(k).toBe(apiKeyTenant('sk-secret-123'));
    expect(k).toMatch(/^key:[0-9a-f]{12}$/);
    expect(k as string).not.toContain('secret');
    expect(t.tenantOf({})).toBe(ANONYMOUS_TENANT);
    const bad = t.tenantOf({ 'x-tenant-id': 'a b' });
    expect(typeof bad).toBe('object');
    expect(bad).toMatchObject({ status: 400, body: { error: { param: 'x-tenant-id', code: 'invalid_value' } } });
    const noHeader = new TenantFairness(resolveTenantsConfig({ header: false, apiKey: false }));
    expect(noHeader.tenantOf({ 'x-tenant-id': 'acme', authorization: 'Bearer sk-1' })).toBe(ANONYMOUS_TENANT);
  });

  it('metrics keep the top N tenants by service and sum the rest as other; the key never appears in clear', async () => {
    const t = new TenantFairness(resolveTenantsConfig({ metricsTopN: 2 }));
    const reg = new Registry();
    t.registerMetrics(reg);
    const key = t.tenantOf({ authorization: 'Bearer sk-very-secret' }) as string;
    for (const [tenant, n] of [
      ['a', 300],
      ['b', 200],
      ['c', 50],
      [key, 10],
    ] as const) {
      t.arrived(tenant);
      t.charge(tenant, n, 0);
    }
    const text = await reg.metrics();
    expect(text).toContain('kvmgr_gateway_tenant_service_tokens{tenant="a"} 300');
    expect(text).toContain('kvmgr_gateway_tenant_service_tokens{tenant="b"} 200');
    expect(text).toContain('kvmgr_gateway_tenant_service_tokens{tenant="other"} 60');
    expect(text).toContain('kvmgr_gateway_tenant_requests{tenant="other"} 2');
    expect(text).not.toContain('sk-very-secret');
  });

  it('counters start over beyond maxTenants once nothing is queued', () => {
    const t = new TenantFairness(resolveTenantsConfig({ maxTenants: 2 }));
    t.arrived('a');
    t.charge('a', 10, 0);
    t.arrived('b');
    t.arrived('c');
    expect(t.summary().map((s) => s.tenant)).toEqual(['c']);
    expect(t.counter('a')).toBe(0);
  });

  it('config errors name the key', () => {
    const msg = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        if (isKvmgrError(e) && e.code === 'KVMGR_BAD_CONFIG') return e.message;
        throw e;
      }
      throw new Error('did not throw');
    };
    expect(msg(() => resolveTenantsConfig({ weights: { acme: 0 } }))).toMatch(/^tenants\.weights\.acme: /);
    expect(msg(() => resolveTenantsConfig({ header: 'bad header' }))).toMatch(/^tenants\.header: /);
    expect(msg(() => resolveTenantsConfig({ outputWeight: -1 }))).toMatch(/^tenants\.outputWeight: /);
    expect(msg(() => resolveTenantsConfig({ nope: 1 }))).toMatch(/^tenants: .*nope/);
  });
});
