/**
 * Issue #19: CLI durations and YAML config files either give a valid value or throw a
 * KvmgrError; overflowing durations and YAML warnings are errors.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isKvmgrError } from '@kvmgr/core';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { loadRunConfig, parseRunConfig } from './config.js';
import { parseDurationMs } from './parse.js';

/**
 * CPU time of this process, ms: the bound below is on a case's own work, which a loaded machine's
 * scheduling does not stretch (on wall time, a process descheduled for a second would fail it).
 */
function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    if (!isKvmgrError(e)) throw e;
    return e.code;
  }
}

describe('CLI hardening (#19)', () => {
  afterEach(() => vi.restoreAllMocks());

  it('D7: a duration that overflows to Infinity is refused, on the flag and in a config file', () => {
    const huge = `1${'0'.repeat(400)}ms`;
    expect(codeOf(() => parseDurationMs('--slo-ttft', huge))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(codeOf(() => parseDurationMs('--slo-ttft', `1${'0'.repeat(306)}m`))).toBe('KVMGR_INVALID_ARGUMENT');
    expect(codeOf(() => parseRunConfig(`slo-ttft: ${huge}\n`, 'c.yaml'))).toBe('KVMGR_BAD_CONFIG');
    expect(codeOf(() => parseRunConfig('slo-tpot: 0ms\n', 'c.yaml'))).toBe('KVMGR_BAD_CONFIG');
    expect(parseDurationMs('--slo-ttft', '1.5s')).toBe(1500);
    expect(parseRunConfig('slo-ttft: 2s\n', 'c.yaml')).toEqual({ sloTtft: '2s' });
  });

  it('YAML warnings become KVMGR_BAD_CONFIG errors; nothing is written to stderr', () => {
    const warn = vi.spyOn(process, 'emitWarning');
    const log = vi.spyOn(console, 'warn');
    const p = join(mkdtempSync(join(tmpdir(), 'kvmgr-cfg-')), 'c.yaml');
    writeFileSync(p, 'model: !custom llama\n');
    expect(codeOf(() => loadRunConfig(p))).toBe('KVMGR_BAD_CONFIG');
    expect(warn).not.toHaveBeenCalled();
    expect(log).not.toHaveBeenCalled();
  });

  it('__proto__, toString and constructor keys are unknown keys, not silently dropped', () => {
    for (const k of ['__proto__', 'toString', 'constructor']) {
      expect(codeOf(() => parseRunConfig(`${k}: 1\n`, 'c.yaml')), k).toBe('KVMGR_BAD_CONFIG');
      expect(codeOf(() => parseRunConfig(`${k}:\n  instances: 1\n`, 'c.yaml')), k).toBe('KVMGR_BAD_CONFIG');
    }
  });

  it('an alias bomb is refused quickly', () => {
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x, x]', ...'bcdefghij'.split('').map((c, i) => `${c}: &${c} [${Array(10).fill(`*${'abcdefghij'[i]}`).join(', ')}]`)].join('\n');
    const t0 = cpuMs();
    expect(codeOf(() => parseRunConfig(bomb, 'c.yaml'))).toBe('KVMGR_BAD_CONFIG');
    expect(cpuMs() - t0).toBeLessThan(2000);
  });
});
