import { type KvmgrError, isKvmgrError } from '@kvmgr/core';
import { describe, expect, it } from 'vitest';
import { parseRouterConfig, parseScorerWeights, resolveRouterConfig } from './config.js';
import { createRouter } from './router.js';

function badConfig(fn: () => unknown): KvmgrError {
  try {
    fn();
  } catch (e) {
    expect(isKvmgrError(e, 'KVMGR_BAD_CONFIG')).toBe(true);
    return e as KvmgrError;
  }
  throw new Error('expected KVMGR_BAD_CONFIG');
}

describe('router config', () => {
  it('parses the weight string with aliases and canonical names', () => {
    expect(parseScorerWeights('pa:3,qd:2,kv:2')).toEqual([
      { name: 'prefix-affinity', weight: 3 },
      { name: 'queue-depth', weight: 2 },
      { name: 'kv-utilization', weight: 2 },
    ]);
    expect(parseScorerWeights(' kv-pressure-slo : 1.5 , nh:0 ')).toEqual([
      { name: 'kv-pressure-slo', weight: 1.5 },
      { name: 'no-hit-lru', weight: 0 },
    ]);
  });

  it('rejects bad tokens, naming the token', () => {
    const cases: [string, string][] = [
      ['pa:x', 'pa:x'],
      ['pa:3,foo:1', 'foo:1'],
      ['pa:3,qd:-1', 'qd:-1'],
      ['pa', 'pa'],
      ['pa:', 'pa:'],
      ['pa:1,pa:2', 'pa:2'],
      ['pa:Infinity', 'pa:Infinity'],
    ];
    for (const [text, token] of cases) {
      const e = badConfig(() => createRouter(text));
      expect(e.message).toContain(JSON.stringify(token));
      expect(e.details.token).toBe(token);
    }
    expect(badConfig(() => createRouter('bogus-preset')).message).toContain('"bogus-preset"');
  });

  it('accepts YAML and objects equivalent to the string form', () => {
    const fromString = parseRouterConfig('pa:3,qd:2,kv:2');
    const fromYaml = parseRouterConfig('scorers:\n  - name: pa\n    weight: 3\n  - name: queue-depth\n    weight: 2\n  - name: kv\n    weight: 2\n');
    const fromMap = resolveRouterConfig({ scorers: { pa: 3, qd: 2, kv: 2 } });
    expect(fromYaml).toEqual(fromString);
    expect(fromMap).toEqual(fromString);
    const full = parseRouterConfig(
      'strategy: scored\nscorers: "pa:2,la:1"\npicker: top-k\ntopK: 3\nseed: 4\nprefixGate:\n  threshold: 0.5\npd:\n  nonCachedTokens: 512\n',
    );
    expect(full.picker).toBe('top-k');
    expect(full.prefixGate).toEqual({ threshold: 0.5, exploration: 0.01 });
    expect(full.pd.nonCachedTokens).toBe(512);
    expect(full.pd.buffer).toBe(0.9);
  });

  it('rejects bad YAML and object configs, naming the field or scorer', () => {
    expect(badConfig(() => parseRouterConfig('scorers:\n  - name: nope\n    weight: 1\n')).message).toContain('"nope"');
    expect(badConfig(() => parseRouterConfig('scorers:\n  - name: pa\n    weight: -2\n')).message).toContain('scorers.0.weight');
    expect(badConfig(() => parseRouterConfig('pickerz: max\nseed: 1\n')).message).toContain('pickerz');
    expect(badConfig(() => parseRouterConfig('scorers: [\n')).code).toBe('KVMGR_BAD_CONFIG');
    expect(badConfig(() => resolveRouterConfig({ scorers: 'pa:x' })).details.token).toBe('pa:x');
    expect(badConfig(() => resolveRouterConfig({ scorers: [{ name: 'la', weight: 1, params: { thresh: 3 } }] })).message).toContain('"thresh"');
    expect(badConfig(() => createRouter({ scorers: { pa: 1, 'prefix-affinity': 2 } })).message).toContain('twice');
  });

  it('has presets: round-robin, random, kvmgr-default, llm-d-default', () => {
    expect(parseRouterConfig('round-robin').strategy).toBe('round-robin');
    expect(parseRouterConfig('random').strategy).toBe('random');
    expect(parseRouterConfig('kvmgr-default').scorers.map((s) => `${s.name}:${s.weight}`)).toEqual([
      'prefix-affinity:3',
      'queue-depth:2',
      'kv-pressure:2',
    ]);
    expect(parseRouterConfig('llm-d-default').scorers.map((s) => s.name)).toEqual(['prefix-affinity', 'queue-depth', 'kv-utilization']);
  });
});
