/**
 * `--config FILE` for replay, ab and sweep: a YAML file with the same keys as the long flags
 * (camelCase or kebab-case), validated with zod. Flags given on the command line win.
 */
import { readFileSync } from 'node:fs';
import { KvmgrError, parseYamlText, validateConfig } from '@kvmgr/core';
import { z } from 'zod';
import { parseDurationMs } from './parse.js';

/** A duration as the flags take it (`500ms`, `2s`), > 0 and finite (see {@link parseDurationMs}). */
const duration = z
  .string()
  .regex(/^\d+(\.\d+)?(us|µs|ms|s|m)$/, 'a duration with a unit such as 500ms or 2s')
  .refine((s) => {
    try {
      parseDurationMs('duration', s);
      return true;
    } catch {
      return false;
    }
  }, 'a finite duration > 0');

/** The keys a config file may set. */
export const RunConfigSchema = z
  .object({
    trace: z.string().min(1),
    model: z.string().min(1),
    gpu: z.string().min(1),
    tp: z.number().int().positive(),
    instances: z.number().int().positive(),
    baseline: z.string().min(1),
    candidate: z.string().min(1),
    pipeline: z.string().min(1),
    router: z.string().min(1),
    baselineRouter: z.string().min(1),
    rateScale: z.number().positive(),
    limit: z.number().int().positive(),
    sloTtft: duration,
    sloTpot: duration,
    seed: z.number().int().nonnegative(),
    out: z.string().min(1),
    rates: z.array(z.number().positive()).min(1),
    profiles: z.array(z.string().min(1)).min(1),
    a: z.string().min(1),
    b: z.string().min(1),
    bootstrap: z.number().int().positive(),
    lenient: z.boolean(),
    prefixIndex: z.enum(['hash-map', 'radix']),
    requestRate: z.number().positive(),
    maxNumBatchedTokens: z.number().int().positive(),
    maxNumSeqs: z.number().int().positive(),
    gpuMemoryUtilization: z.number().positive().max(1),
    blockSize: z.number().int().positive(),
  })
  .partial()
  .strict();

/** A validated config file. */
export type RunConfig = z.infer<typeof RunConfigSchema>;

function camel(key: string): string {
  return key.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/**
 * Reads and validates a YAML config file.
 * @throws KvmgrError `KVMGR_NOT_FOUND` when the file is missing, `KVMGR_BAD_CONFIG` naming the
 *   key and the problem when it does not validate.
 */
export function loadRunConfig(path: string): RunConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new KvmgrError('KVMGR_NOT_FOUND', `--config ${path}: cannot read file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { cause: e });
  }
  return parseRunConfig(text, path);
}

/**
 * Validates the text of a YAML config file. The YAML library's warnings (an unresolved tag such
 * as `!custom`, …) are errors here, not lines on stderr: a config the library had to guess
 * about is not run.
 * @param text - the file's text.
 * @param path - the file's name, for messages.
 * @throws KvmgrError `KVMGR_BAD_CONFIG` naming the key and the problem (or the YAML error or
 *   warning) when it does not validate.
 */
export function parseRunConfig(text: string, path: string): RunConfig {
  const raw = parseYamlText(text, `--config ${path}`);
  if (raw === null || raw === undefined) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new KvmgrError('KVMGR_BAD_CONFIG', `--config ${path}: expected a mapping of option names to values`);
  const normalized = Object.fromEntries(Object.entries(raw as Record<string, unknown>).map(([k, v]) => [camel(k), v]));
  return validateConfig(normalized, RunConfigSchema, `--config ${path}`);
}
