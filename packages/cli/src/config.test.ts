import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isKvmgrError } from '@kvmgr/core';
import { describe, expect, it } from 'vitest';
import { loadRunConfig } from './config.js';

function file(text: string): string {
  const p = join(mkdtempSync(join(tmpdir(), 'kvmgr-cfg-')), 'c.yaml');
  writeFileSync(p, text);
  return p;
}

describe('loadRunConfig', () => {
  it('accepts kebab-case keys and returns camelCase', () => {
    expect(loadRunConfig(file('instances: 8\nrate-scale: 1.5\nslo-ttft: 2s\nrates: [1, 2]\n'))).toEqual({
      instances: 8,
      rateScale: 1.5,
      sloTtft: '2s',
      rates: [1, 2],
    });
    expect(loadRunConfig(file(''))).toEqual({});
  });

  it('names the bad key', () => {
    const cases: Array<[string, RegExp]> = [
      ['instances: -1\n', /instances/],
      ['slo-ttft: 500\n', /sloTtft/],
      ['rate-scale: fast\n', /rateScale/],
      ['colour: blue\n', /colour/],
      ['- a\n- b\n', /mapping/],
      ['a: [\n', /not valid YAML/],
    ];
    for (const [text, re] of cases) {
      try {
        loadRunConfig(file(text));
        throw new Error(`accepted ${text}`);
      } catch (e) {
        expect(isKvmgrError(e, 'KVMGR_BAD_CONFIG'), String(e)).toBe(true);
        expect((e as Error).message).toMatch(re);
      }
    }
    try {
      loadRunConfig('/nonexistent/x.yaml');
    } catch (e) {
      expect(isKvmgrError(e, 'KVMGR_NOT_FOUND')).toBe(true);
    }
  });
});
