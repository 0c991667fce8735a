#!/usr/bin/env node
/**
 * Compiles cc/kernels/gather_scatter.cu to build/kernels/gather_scatter.fatbin (sm_80, sm_90,
 * plus PTX for newer GPUs) when nvcc is present (NVCC env, PATH, /usr/local/cuda/bin). Compile
 * only: nothing here needs a GPU. Without nvcc it says so and exits 0.
 *
 * Usage: node scripts/compile-kernels.mjs [--require]   (--require: exit 1 when nvcc is missing)
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkg = dirname(dirname(fileURLToPath(import.meta.url)));
const require = process.argv.includes('--require');

function findNvcc() {
  const candidates = [process.env.NVCC, 'nvcc', '/usr/local/cuda/bin/nvcc'].filter(Boolean);
  for (const c of candidates) {
    const r = spawnSync(c, ['--version'], { encoding: 'utf8' });
    if (r.status === 0) return { nvcc: c, version: (r.stdout.match(/release ([\d.]+)/) ?? [])[1] ?? 'unknown' };
  }
  return undefined;
}

const found = findNvcc();
if (!found) {
  process.stderr.write('@kvmgr/native: nvcc not found; the optional CUDA kernels were not compiled\n');
  process.exit(require ? 1 : 0);
}
const src = join(pkg, 'cc', 'kernels', 'gather_scatter.cu');
const outDir = join(pkg, 'build', 'kernels');
mkdirSync(outDir, { recursive: true });
const out = join(outDir, 'gather_scatter.fatbin');
const args = [
  '-fatbin',
  '-O3',
  '-std=c++17',
  '-gencode=arch=compute_80,code=sm_80',
  '-gencode=arch=compute_90,code=sm_90',
  '-gencode=arch=compute_90,code=compute_90',
  src,
  '-o',
  out,
];
const t0 = Date.now();
const r = spawnSync(found.nvcc, args, { encoding: 'utf8' });
if (r.status !== 0 || !existsSync(out)) {
  process.stderr.write(`${r.stdout}${r.stderr}`);
  process.stderr.write(`@kvmgr/native: nvcc ${found.version} failed to compile ${src}\n`);
  process.exit(1);
}
process.stdout.write(`@kvmgr/native: nvcc ${found.version} compiled gather_scatter.cu → ${out} (${statSync(out).size} bytes, sm_80 + sm_90 + compute_90 PTX) in ${Date.now() - t0} ms\n`);
