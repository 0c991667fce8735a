/**
 * `kvmgr list`: every list is read from its package's registry (names match exactly), one line
 * each; a bad kind is one line and exit 2; a closed pipe ends quietly; and `pnpm kvmgr` run from
 * a subdirectory resolves relative paths from there (INIT_CWD), not from the repository root.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { EVICTION_POLICY_NAMES } from '@kvmgr/eviction';
import { listPredictors } from '@kvmgr/lifetime-predictor';
import { SCORER_ALIASES, SCORER_NAMES } from '@kvmgr/router';
import { BUILTIN_PASSES, PRESETS } from '@kvmgr/scheduler-ir';
import { ENGINE_PROFILES, GPU_SPECS, MODEL_SPECS } from '@kvmgr/sim';
import { describe, expect, it } from 'vitest';
import { LIST_KINDS, listRows } from '../src/list.js';

const BIN = resolve(import.meta.dirname, '../src/bin.ts');
const NODE_ARGS = ['--conditions=@kvmgr/source', '--import', 'tsx', BIN];

describe('kvmgr list', () => {
  it('reads every list from the registries, with a description for each built-in name', () => {
    const names = (kind: string) => listRows(kind).map((r) => r.name);
    expect(names('models')).toEqual(Object.values(MODEL_SPECS).map((m) => m.name));
    expect(names('gpus')).toEqual(Object.keys(GPU_SPECS));
    expect(names('profiles')).toEqual(Object.keys(ENGINE_PROFILES));
    expect(names('passes')).toEqual(BUILTIN_PASSES.map((p) => p.argument));
    expect(names('presets')).toEqual(Object.keys(PRESETS));
    expect(names('policies')).toEqual([...EVICTION_POLICY_NAMES]);
    expect(names('predictors')).toEqual(listPredictors());
    // scorers carry their weight letter: `prefix-affinity (pa)`
    const letterOf = Object.fromEntries(Object.entries(SCORER_ALIASES).map(([a, n]) => [n, a]));
    expect(names('scorers')).toEqual(SCORER_NAMES.map((n) => (letterOf[n] ? `${n} (${letterOf[n]})` : n)));
    for (const kind of LIST_KINDS) {
      for (const r of listRows(kind)) expect(r.description, `${kind} ${r.name}`).not.toBe('');
    }
  });

  it('prints one line per entry; an unknown list is one line on stderr and exit 2', () => {
    const ok = spawnSync(process.execPath, [...NODE_ARGS, 'list', 'scorers'], { encoding: 'utf8', timeout: 60_000 });
    expect(ok.status).toBe(0);
    expect(ok.stdout.trim().split('\n')).toHaveLength(SCORER_NAMES.length);
    expect(ok.stdout).toMatch(/^prefix-affinity \(pa\) +tier-weighted/m);
    const bad = spawnSync(process.execPath, [...NODE_ARGS, 'list', 'widgets'], { encoding: 'utf8', timeout: 60_000 });
    expect(bad.status).toBe(2);
    expect(bad.stdout).toBe('');
    expect(bad.stderr.trim().split('\n')).toEqual([`kvmgr: error: unknown list "widgets"; expected one of ${LIST_KINDS.join(', ')}`]);
  });

  it('ends quietly when the reader closes the pipe (kvmgr list … | head -1)', async () => {
    const child = spawn(process.execPath, [...NODE_ARGS, 'list', 'presets'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    child.stdout.once('data', () => child.stdout.destroy());
    const code = await new Promise<number | null>((done) => child.on('close', (c) => done(c)));
    expect(stderr).not.toContain('EPIPE');
    expect(code).toBe(0);
  });
});

describe('pnpm kvmgr from a subdirectory', () => {
  it('resolves a relative --trace from where the user ran it (INIT_CWD), as pnpm and npm pass it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvmgr-cwd-'));
    writeFileSync(join(dir, 'mini.jsonl'), '{"timestamp": 0, "input_length": 1100, "output_length": 10, "hash_ids": [1, 2, 3]}\n{"timestamp": 10, "input_length": 1100, "output_length": 10, "hash_ids": [1, 2, 3]}\n');
    const args = [...NODE_ARGS, 'eviction', 'eval', '--trace', 'mini.jsonl', '--capacities', '100', '--policies', 'lru', '--json'];
    // the root script runs in the repository root; the user's directory is INIT_CWD
    const env = { ...process.env, npm_lifecycle_event: 'kvmgr', INIT_CWD: dir };
    const r = spawnSync(process.execPath, args, { encoding: 'utf8', cwd: resolve(import.meta.dirname, '../../..'), env, timeout: 60_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toBeTruthy();
    // without INIT_CWD the same relative path is looked up in the repository root, and fails
    const { INIT_CWD: _omit, ...plain } = env;
    const r2 = spawnSync(process.execPath, args, { encoding: 'utf8', cwd: resolve(import.meta.dirname, '../../..'), env: plain, timeout: 60_000 });
    expect(r2.status).toBe(2);
    expect(r2.stderr).toContain('mini.jsonl');
  });
});
