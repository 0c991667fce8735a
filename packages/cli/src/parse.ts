/**
 * Flag value parsers for the CLI. Each throws `KVMGR_INVALID_ARGUMENT` naming the flag, the
 * value and what was expected; commander turns that into a one-line error and exit code 2.
 */
import { KvmgrError, describeValue } from '@kvmgr/core';

function bad(flag: string, value: unknown, expected: string): KvmgrError {
  return new KvmgrError('KVMGR_INVALID_ARGUMENT', `${flag}: expected ${expected}, got ${describeValue(value)}`, {
    details: { flag, value, expected },
  });
}

const DURATION = /^(\d+(?:\.\d+)?)(us|µs|ms|s|m)$/;
const UNIT_MS: Readonly<Record<string, number>> = { us: 0.001, µs: 0.001, ms: 1, s: 1000, m: 60_000 };

/**
 * Parses a duration with a unit (`500ms`, `2s`, `150us`, `1.5m`) into milliseconds.
 * A bare number is refused: SLOs without units are ambiguous.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a missing unit, a negative or malformed value,
 *   or one too large to be a finite number of milliseconds.
 */
export function parseDurationMs(flag: string, value: string): number {
  if (typeof value !== 'string') throw bad(flag, value, 'a duration with a unit such as 500ms or 2s');
  const m = DURATION.exec(value.trim());
  if (!m) {
    const hint = /^-?\d+(\.\d+)?$/.test(value.trim()) ? ' (add a unit: us, ms, s or m)' : '';
    throw bad(flag, value, `a duration with a unit such as 500ms or 2s${hint}`);
  }
  const ms = Number(m[1]) * (UNIT_MS[m[2] as string] as number);
  if (!(ms > 0)) throw bad(flag, value, 'a duration > 0');
  if (!Number.isFinite(ms)) throw bad(flag, value, 'a finite duration');
  return ms;
}

/**
 * Parses a positive finite number (rates, scales).
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for negative, zero, NaN or non-numeric input.
 */
export function parsePositiveNumber(flag: string, value: string): number {
  if (typeof value !== 'string') throw bad(flag, value, 'a string');
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0) throw bad(flag, value, 'a number > 0');
  return n;
}

/**
 * Parses a positive integer (instances, seeds ≥ 0 use {@link parseNonNegativeInt}).
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` otherwise.
 */
export function parsePositiveInt(flag: string, value: string): number {
  if (typeof value !== 'string') throw bad(flag, value, 'a string');
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < 1) throw bad(flag, value, 'a positive integer');
  return n;
}

/**
 * Parses a non-negative integer (seeds, limits).
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` otherwise.
 */
export function parseNonNegativeInt(flag: string, value: string): number {
  if (typeof value !== 'string') throw bad(flag, value, 'a string');
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n)) throw bad(flag, value, 'a non-negative integer');
  return n;
}

/**
 * Parses a comma-separated list of positive numbers (`0.5,1,2`).
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` naming the bad element.
 */
export function parseNumberList(flag: string, value: string): number[] {
  if (typeof value !== 'string') throw bad(flag, value, 'a string');
  const parts = value.split(',').map((s) => s.trim());
  if (parts.length === 0 || parts.some((p) => p === '')) throw bad(flag, value, 'a comma-separated list of numbers > 0');
  return parts.map((p) => parsePositiveNumber(flag, p));
}

/**
 * Parses a comma-separated list of positive integers (`1000,3000`).
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` naming the bad element.
 */
export function parsePositiveIntList(flag: string, value: string): number[] {
  if (typeof value !== 'string') throw bad(flag, value, 'a string');
  const parts = value.split(',').map((s) => s.trim());
  if (parts.some((p) => p === '')) throw bad(flag, value, 'a comma-separated list of positive integers');
  return parts.map((p) => parsePositiveInt(flag, p));
}

/**
 * Parses a fraction in (0, 1] (`0.9`, or a percentage `90%`).
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` otherwise.
 */
export function parseFraction(flag: string, value: string): number {
  if (typeof value !== 'string') throw bad(flag, value, 'a string');
  const v = value.trim();
  const n = v.endsWith('%') ? Number(v.slice(0, -1)) / 100 : Number(v);
  if (v === '' || !Number.isFinite(n) || n <= 0 || n > 1) throw bad(flag, value, 'a fraction in (0, 1] such as 0.9 or 90%');
  return n;
}
