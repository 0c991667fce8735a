/** What `scripts/docs-gen.ts` records about a section's last run (`.docs-gen/<section>/meta.json`). */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { num } from './format.js';

/** The fields of `meta.json` that renderers read. */
export interface RunMeta {
  /** Wall seconds of the command. */
  readonly wallS?: number;
  /** 1-minute load average when it ended. */
  readonly loadAverage?: number;
  /** CPUs of the machine. */
  readonly cpus?: number;
}

/** Reads a section's `meta.json`. @param dir - the section's cache folder @throws Error when it is missing or not JSON */
export function readMeta(dir: string): RunMeta {
  return JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as RunMeta;
}

/** "Load average (1 min) … when the run ended", from the section's meta.json; '' when not recorded. */
export function loadLine(dir: string): string {
  const meta = readMeta(dir);
  return meta.loadAverage === undefined ? '' : `Load average (1 min) when the run ended: ${num(meta.loadAverage, 1)} on ${meta.cpus ?? '?'} CPUs.`;
}

/** "N s wall at load average L on C CPUs", for a sentence on how long a section's command took. */
export function runTime(dir: string): string {
  const meta = readMeta(dir);
  return `${num(meta.wallS, 0)} s wall at load average ${num(meta.loadAverage, 1)} on ${meta.cpus ?? '?'} CPUs`;
}
