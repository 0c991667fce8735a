import { isKvmgrError } from '@kvmgr/core';
import { describe, expect, it } from 'vitest';
import { parseDurationMs, parseFraction, parseNumberList, parsePositiveInt, parsePositiveNumber } from './parse.js';

function message(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(isKvmgrError(e, 'KVMGR_INVALID_ARGUMENT')).toBe(true);
    return (e as Error).message;
  }
  throw new Error('expected a KvmgrError');
}

describe('CLI flag parsers', () => {
  it('durations need units', () => {
    expect(parseDurationMs('--slo-ttft', '500ms')).toBe(500);
    expect(parseDurationMs('--slo-ttft', '2s')).toBe(2000);
    expect(parseDurationMs('--slo-tpot', '150us')).toBeCloseTo(0.15);
    expect(parseDurationMs('--x', '1.5m')).toBe(90_000);
    expect(message(() => parseDurationMs('--slo-ttft', '500'))).toBe(
      '--slo-ttft: expected a duration with a unit such as 500ms or 2s (add a unit: us, ms, s or m), got "500"',
    );
    expect(message(() => parseDurationMs('--slo-ttft', '-5ms'))).toContain('--slo-ttft');
    expect(message(() => parseDurationMs('--slo-ttft', '0ms'))).toContain('> 0');
  });

  it('rates must be positive', () => {
    expect(parsePositiveNumber('--rate-scale', '1.5')).toBe(1.5);
    expect(message(() => parsePositiveNumber('--rate-scale', '-1'))).toBe('--rate-scale: expected a number > 0, got "-1"');
    expect(message(() => parsePositiveNumber('--rate-scale', 'abc'))).toContain('"abc"');
    expect(message(() => parsePositiveNumber('--rate-scale', ''))).toContain('--rate-scale');
  });

  it('integers, lists and fractions', () => {
    expect(parsePositiveInt('--instances', '4')).toBe(4);
    expect(message(() => parsePositiveInt('--instances', '0'))).toContain('positive integer');
    expect(message(() => parsePositiveInt('--instances', '2.5'))).toContain('"2.5"');
    expect(parseNumberList('--rates', '0.5, 1,2')).toEqual([0.5, 1, 2]);
    expect(message(() => parseNumberList('--rates', '1,,2'))).toContain('--rates');
    expect(message(() => parseNumberList('--rates', '1,-2'))).toContain('"-2"');
    expect(parseFraction('--x', '90%')).toBeCloseTo(0.9);
    expect(parseFraction('--x', '0.5')).toBe(0.5);
    expect(message(() => parseFraction('--x', '1.5'))).toContain('(0, 1]');
  });
});
