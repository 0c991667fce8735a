import { isKvmgrError } from '@kvmgr/core';
import { describe, expect, it } from 'vitest';
import { parseGatewayConfig, parseRoutingInput, resolveGatewayConfig } from './config.js';

function badKey(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(isKvmgrError(e, 'KVMGR_BAD_CONFIG')).toBe(true);
    const m = (e as Error).message;
    expect(m).not.toContain('\n');
    return m;
  }
  throw new Error('expected KVMGR_BAD_CONFIG');
}

const EP = 'endpoints:\n  - url: http://127.0.0.1:8000\n  - url: http://127.0.0.1:8001\n';

describe('gateway config', () => {
  it('fills defaults', () => {
    const c = parseGatewayConfig(EP);
    expect(c.host).toBe('127.0.0.1');
    expect(c.port).toBe(8080);
    expect(c.endpoints.map((e) => [e.name, e.engine, e.role, e.metricsUrl, e.kvEvents])).toEqual([
      ['127.0.0.1:8000', 'vllm', 'both', 'http://127.0.0.1:8000/metrics', null],
      ['127.0.0.1:8001', 'vllm', 'both', 'http://127.0.0.1:8001/metrics', null],
    ]);
    expect(c.routing.scorers.map((s) => [s.name, s.weight])).toEqual([
      ['prefix-affinity', 3],
      ['queue-depth', 2],
      ['kv-utilization', 2],
    ]);
    expect(c.routing.blockSize).toBe(16);
    expect(c.blockSizeFixed).toBe(false);
    expect(c.admission).toEqual({ enabled: true, maxQueue: 256, maxWaitMs: 30000, defaultMaxTokens: 256, retryAfterS: 1 });
  });

  it('reads weight strings, the router object form, and llm-d EndpointPickerConfig plugins', () => {
    expect(parseGatewayConfig(`${EP}routing: pa:1,kv:4\n`).routing.scorers.map((s) => s.weight)).toEqual([1, 4]);
    const picker = parseGatewayConfig(`${EP}model: m\nrouting:
  plugins:
    - type: prefix-cache-scorer
    - type: queue-scorer
    - type: load-aware-scorer
      parameters: { threshold: 64 }
    - type: weighted-random-picker
  schedulingProfiles:
    - name: default
      plugins:
        - { pluginRef: prefix-cache-scorer, weight: 3 }
        - { pluginRef: queue-scorer, weight: 2 }
        - { pluginRef: load-aware-scorer, weight: 1 }
        - { pluginRef: weighted-random-picker }
`);
    expect(picker.routing.scorers).toEqual([
      { name: 'prefix-affinity', weight: 3, params: {} },
      { name: 'queue-depth', weight: 2, params: {} },
      { name: 'load-aware', weight: 1, params: { threshold: 64 } },
    ]);
    expect(picker.routing.picker).toBe('weighted-random');
    expect(picker.routing.model).toBe('m');
  });

  it('errors are one line that starts with the bad key', () => {
    expect(badKey(() => parseGatewayConfig(`${EP}routing: pa:3,foo:1\n`))).toMatch(/^routing: .*"foo:1".*unknown scorer/);
    expect(badKey(() => parseGatewayConfig(`${EP}routing: { scorers: "pa:3,foo:1" }\n`))).toMatch(/^routing\.scorers: .*unknown scorer/);
    expect(badKey(() => parseGatewayConfig(`${EP}routing: pa:-1\n`))).toMatch(/^routing: .*weight must be a finite number >= 0/);
    expect(badKey(() => parseGatewayConfig(`${EP}routing:\n  scorers:\n    - { name: pa, weight: -2 }\n`))).toMatch(/^routing\.scorers\[0\]\.weight: /);
    expect(badKey(() => parseGatewayConfig(`${EP}  - url: http://127.0.0.1:8000\n`))).toMatch(/^endpoints\[2\]\.url: duplicate endpoint "http:\/\/127\.0\.0\.1:8000" \(also endpoints\[0\]\)/);
    expect(badKey(() => parseGatewayConfig('endpoints:\n  - { url: "http://a:1", name: x }\n  - { url: "http://b:1", name: x }\n'))).toMatch(/^endpoints\[1\]\.name: duplicate endpoint "x"/);
    expect(badKey(() => parseGatewayConfig('endpoints:\n  - url: ftp://x\n'))).toMatch(/^endpoints\[0\]\.url: expected an http\(s\) URL/);
    expect(badKey(() => parseGatewayConfig('endpoints:\n  - { url: "http://a:1", engine: triton }\n'))).toMatch(/^endpoints\[0\]\.engine: /);
    expect(badKey(() => parseGatewayConfig('endpoints:\n  - { url: "http://a:1", kvEvents: "localhost:5557" }\n'))).toMatch(/^endpoints\[0\]\.kvEvents: expected a ZMQ endpoint/);
    expect(badKey(() => parseGatewayConfig('endpoints:\n  - { url: "http://a:1", replay: "tcp://a:5558" }\n'))).toMatch(/^endpoints\[0\]\.replay: a replay endpoint needs kvEvents/);
    expect(badKey(() => parseGatewayConfig('server: { port: 70000 }\n'))).toMatch(/^server\.port: /);
    expect(badKey(() => parseGatewayConfig('admission: { maxQueue: -1 }\n'))).toMatch(/^admission\.maxQueue: /);
    expect(badKey(() => parseGatewayConfig('servr: {}\n'))).toMatch(/^gateway config: .*servr/);
    expect(badKey(() => parseGatewayConfig('endpoints: []\nendpoints: []\n'))).toMatch(/^gateway config: YAML does not parse/);
    expect(
      badKey(() => parseGatewayConfig('routing:\n  plugins: [{ type: queue-scorer }]\n  schedulingProfiles: [{ plugins: [{ pluginRef: nope }] }]\n')),
    ).toMatch(/^routing\.schedulingProfiles\[0\]\.plugins\[0\]\.pluginRef: unknown plugin "nope"/);
    expect(
      badKey(() => parseGatewayConfig('routing:\n  plugins: [{ type: queue-scorer }]\n  schedulingProfiles: [{ plugins: [{ pluginRef: queue-scorer, weight: -1 }] }]\n')),
    ).toMatch(/^routing\.schedulingProfiles\[0\]\.plugins\[0\]\.weight: weight must be a finite number >= 0/);
    expect(badKey(() => resolveGatewayConfig([]))).toMatch(/^gateway config: expected a mapping/);
  });

  it('routing input over HTTP: text or object, same validation', () => {
    expect(parseRoutingInput('round-robin').config.strategy).toBe('round-robin');
    expect(parseRoutingInput('{"scorers":"pa:2"}').config.scorers[0]?.weight).toBe(2);
    expect(parseRoutingInput({ scorers: 'kv:1', blockSize: 32 })).toMatchObject({ blockSizeFixed: true, config: { blockSize: 32 } });
    expect(badKey(() => parseRoutingInput({ scorers: 'kv:1', nope: 1 }))).toMatch(/^routing: .*nope/);
  });
});
