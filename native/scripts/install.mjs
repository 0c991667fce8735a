#!/usr/bin/env node
/**
 * Builds the native addon with node-gyp. Install must never fail because of native code: when
 * the build fails (no compiler, no Python, no Node headers) this prints ONE line and exits 0,
 * and `@kvmgr/native` uses its pure-TS fallback backend at run time.
 *
 * Usage: node scripts/install.mjs [--strict] [--package-dir DIR]
 *   --strict            exit with node-gyp's status instead of 0 (the `build:native` script)
 *   --package-dir DIR   build the binding.gyp in DIR (default: this package)
 * Environment:
 *   KVMGR_NATIVE_SKIP_BUILD=1      do not build at all
 *   KVMGR_NATIVE_FAIL_TOOLCHAIN=1  simulate a machine without a compiler (CC/CXX point nowhere)
 *   KVMGR_NATIVE_VERBOSE=1         show node-gyp's output
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const strict = args.includes('--strict');
const dirArg = args.indexOf('--package-dir');
const here = dirname(dirname(fileURLToPath(import.meta.url)));
const pkgDir = dirArg >= 0 && args[dirArg + 1] ? resolve(args[dirArg + 1]) : here;
const verbose = process.env.KVMGR_NATIVE_VERBOSE === '1' || strict;

function notice(reason) {
  process.stderr.write(`@kvmgr/native: native addon not built (${reason}); the pure-TS fallback backend will be used\n`);
  process.exit(strict ? 1 : 0);
}

if (process.env.KVMGR_NATIVE_SKIP_BUILD === '1') notice('KVMGR_NATIVE_SKIP_BUILD=1');

function findNodeGyp() {
  // npm and pnpm point lifecycle scripts at the node-gyp they bundle; consumers of the published
  // package do not get our devDependency.
  const bundled = process.env.npm_config_node_gyp;
  if (bundled && existsSync(bundled)) return bundled;
  for (const base of [join(pkgDir, 'package.json'), join(here, 'package.json')]) {
    try {
      return createRequire(base).resolve('node-gyp/bin/node-gyp.js');
    } catch {
      // try the next place
    }
  }
  return undefined;
}

const nodeGyp = findNodeGyp();
if (!nodeGyp) notice('node-gyp is not installed');

const gypArgs = [nodeGyp, 'rebuild', `-j`, 'max'];
// Prefer the headers that ship with this Node (no download needed, works offline).
const prefix = dirname(dirname(process.execPath));
if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node_api.h'))) {
  gypArgs.push(`--nodedir=${prefix}`);
}
const env = { ...process.env };
if (process.env.KVMGR_NATIVE_FAIL_TOOLCHAIN === '1') {
  env.CC = 'kvmgr-no-such-compiler';
  env.CXX = 'kvmgr-no-such-compiler';
  env.LINK = 'kvmgr-no-such-compiler';
}
const r = spawnSync(process.execPath, gypArgs, { cwd: pkgDir, env, stdio: verbose ? 'inherit' : 'pipe', encoding: 'utf8' });
if (r.status !== 0) {
  const log = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  const first = log.split('\n').find((l) => /error|not found|No such file/i.test(l) && !/^gyp info/.test(l));
  const why = process.env.KVMGR_NATIVE_FAIL_TOOLCHAIN === '1' ? 'KVMGR_NATIVE_FAIL_TOOLCHAIN=1' : (first?.trim().slice(0, 160) ?? `node-gyp exited with ${r.status}`);
  notice(why);
}
if (verbose) process.stderr.write(`@kvmgr/native: built ${join(pkgDir, 'build', 'Release', 'kvmgr_native.node')}\n`);
