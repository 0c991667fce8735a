/**
 * The benchmark runner: `node --import tsx bench/run.ts [--package DIR | --filter NAME] [--grep RE] [--quick]`.
 * Finds `bench/*.bench.ts` files, runs each suite with benchmark.js one case at a time, prints a
 * table, and writes `bench/results/<package>.json` (ops/s, mean, rme, samples, p50/p99 where
 * measured, ratio to the in-run baseline).
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import Benchmark from 'benchmark';
import type { BenchCase, BenchResult, BenchSuite, CreateSuite } from './types.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

interface Args {
  packages: string[];
  grep: RegExp | undefined;
  quick: boolean;
}

function packageDirs(): { dir: string; name: string }[] {
  const dirs = [
    ...readdirSync(join(root, 'packages'), { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .map((d) => join(root, 'packages', d.name)),
    join(root, 'native'),
  ];
  return dirs
    .filter((d) => existsSync(join(d, 'package.json')))
    .map((dir) => ({ dir, name: (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name: string }).name }));
}

function parseArgs(argv: string[]): Args {
  const all = packageDirs();
  const packages: string[] = [];
  let grep: RegExp | undefined;
  let quick = process.env.KVMGR_BENCH_QUICK === '1';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    if (a === '--package' && v) {
      packages.push(resolve(v));
      i++;
    } else if (a === '--filter' && v) {
      const hit = all.filter((p) => p.name === v || basename(p.dir) === v || p.name.endsWith(`/${v}`));
      if (hit.length === 0) {
        console.error(`bench: --filter ${JSON.stringify(v)} matches no package; known: ${all.map((p) => p.name).join(', ')}`);
        process.exit(2);
      }
      packages.push(...hit.map((p) => p.dir));
      i++;
    } else if (a === '--grep' && v) {
      grep = new RegExp(v);
      i++;
    } else if (a === '--quick') {
      quick = true;
    } else if (a === '--') {
      // pnpm passes a separator through; ignore it
    } else {
      console.error(`bench: unknown argument ${JSON.stringify(a)}; usage: run.ts [--package DIR | --filter NAME] [--grep RE] [--quick]`);
      process.exit(2);
    }
  }
  return { packages: packages.length > 0 ? packages : all.map((p) => p.dir), grep, quick };
}

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[idx] as number;
}

function latency(c: BenchCase, n: number): { p50Us: number; p99Us: number } {
  const t = new Float64Array(n);
  for (let i = 0; i < Math.min(n, 1000); i++) c.fn(); // warm up
  for (let i = 0; i < n; i++) {
    const s = process.hrtime.bigint();
    c.fn();
    t[i] = Number(process.hrtime.bigint() - s) / 1000;
  }
  t.sort();
  return { p50Us: percentile(t, 0.5), p99Us: percentile(t, 0.99) };
}

function runCase(c: BenchCase, quick: boolean): Promise<Benchmark> {
  return new Promise((resolvePromise, reject) => {
    const b = new Benchmark(c.name, c.fn, {
      minSamples: quick ? 5 : 20,
      maxTime: quick ? 0.5 : 2,
      onComplete: () => resolvePromise(b),
      onError: (e: unknown) => reject((e as { target?: { error?: unknown } }).target?.error ?? e),
    });
    b.run({ async: true });
  });
}

async function runSuite(suite: BenchSuite, args: Args): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  for (const c of suite.cases) {
    if (args.grep && !args.grep.test(`${suite.name} ${c.name}`)) continue;
    const b = await runCase(c, args.quick);
    const lat = c.latencySamples ? latency(c, args.quick ? Math.min(c.latencySamples, 2000) : c.latencySamples) : undefined;
    results.push({
      suite: suite.name,
      name: c.name,
      opsPerSec: b.hz,
      meanUs: b.stats.mean * 1e6,
      rme: b.stats.rme,
      samples: b.stats.sample.length,
      ...(lat ?? {}),
      ...(c.baseline ? { baseline: c.baseline } : {}),
    });
  }
  return results.map((r) => {
    if (!r.baseline) return r;
    const base = results.find((x) => x.name === r.baseline);
    return base ? { ...r, speedupVsBaseline: base.meanUs / r.meanUs } : r;
  });
}

function fmt(n: number | undefined, digits = 3): string {
  if (n === undefined || Number.isNaN(n)) return '-';
  if (n >= 1000) return n.toFixed(0);
  return n.toPrecision(digits);
}

function printTable(pkg: string, rows: BenchResult[]): void {
  const header = ['suite', 'case', 'ops/s', 'mean µs', '±%', 'p50 µs', 'p99 µs', 'vs baseline'];
  const body = rows.map((r) => [
    r.suite,
    r.name,
    fmt(r.opsPerSec),
    fmt(r.meanUs),
    r.rme.toFixed(1),
    fmt(r.p50Us),
    fmt(r.p99Us),
    r.speedupVsBaseline ? `${r.speedupVsBaseline.toFixed(2)}× ${r.baseline}` : '',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ');
  console.log(`\n${pkg}`);
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of body) console.log(line(row));
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const outDir = join(root, 'bench', 'results');
  mkdirSync(outDir, { recursive: true });
  let ran = 0;
  for (const dir of args.packages) {
    const benchDir = join(dir, 'bench');
    if (!existsSync(benchDir)) continue;
    const files = readdirSync(benchDir).filter((f) => f.endsWith('.bench.ts')).sort();
    if (files.length === 0) continue;
    const pkgName = (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name: string }).name;
    const rows: BenchResult[] = [];
    const notes: Record<string, Record<string, number | string>> = {};
    for (const f of files) {
      const mod = (await import(pathToFileURL(join(benchDir, f)).href)) as { createSuite?: CreateSuite };
      if (typeof mod.createSuite !== 'function') throw new Error(`${join(benchDir, f)} does not export createSuite()`);
      const suite = await mod.createSuite();
      rows.push(...(await runSuite(suite, args)));
      if (suite.notes) notes[suite.name] = { ...suite.notes };
    }
    printTable(pkgName, rows);
    for (const [s, n] of Object.entries(notes)) console.log(`  notes (${s}): ${JSON.stringify(n)}`);
    const file = join(outDir, `${basename(dir)}.json`);
    writeFileSync(
      file,
      `${JSON.stringify({ package: pkgName, date: new Date().toISOString(), node: process.version, cpu: cpus()[0]?.model ?? 'unknown', quick: args.quick, results: rows, notes }, null, 2)}\n`,
    );
    console.log(`  wrote ${file}`);
    ran += rows.length;
  }
  if (ran === 0) {
    console.error('bench: no benchmark ran');
    process.exit(1);
  }
}

await main();
