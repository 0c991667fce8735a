/**
 * Regenerates the measured numbers of the docs and checks that no other ones are left.
 *
 *   pnpm docs:gen [section|group…] [--rerun]  # groups: sim (every simulator-backed section), bench
 *                                        # run sections (named ones always; else only those
 *                                        # without a cached output, all with --rerun), then
 *                                        # re-render every generated block
 *   pnpm docs:check [--rerun]            # number lint + every block equals its re-rendering
 *                                        # from the cache (sections without a cache are named
 *                                        # and skipped); exit 1 on any difference
 *   pnpm docs:gen --no-run               # only re-render the blocks from the cache
 *   pnpm docs:gen --list                 # sections, their commands and blocks
 *
 * A section (`scripts/docs-gen/sections.ts`) is one `kvmgr` command, run on sources with its
 * working directory at `.docs-gen/<section>/` (gitignored), where its stdout, stderr, output
 * files and `meta.json` (command, wall seconds, finish time) stay; a block is the markdown
 * between `<!-- gen:NAME -->` and `<!-- /gen:NAME -->` in README.md, docs/**.md or a package
 * README, rendered from those outputs. The number lint (`scripts/docs-gen/lint.ts`) fails on
 * any number outside a block that looks like a measurement.
 *
 * Environment: `KVMGR_SHARED` — the shared data folder (traces, validation runs)
 * @default `../shared` beside the repository
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findBlocks, replaceBlocks } from './docs-gen/blocks.js';
import { findUngeneratedNumbers } from './docs-gen/lint.js';
import { GROUPS, type Outputs, SECTIONS, type Section, readOutput } from './docs-gen/sections.js';
import { sharedDir } from './shared-data.js';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));
const cacheRoot = join(root, '.docs-gen');
const shared = sharedDir();

/** The markdown files the generator writes and the lint reads, relative to the root. */
export function docFiles(): string[] {
  const out = ['README.md'];
  const walk = (dir: string): void => {
    for (const e of readdirSync(join(root, dir), { withFileTypes: true })) {
      const p = `${dir}/${e.name}`;
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.md')) out.push(p);
    }
  };
  walk('docs');
  for (const base of ['packages', '.']) {
    const dirs = base === '.' ? ['native'] : readdirSync(join(root, base)).map((d) => `${base}/${d}`);
    for (const d of dirs) if (existsSync(join(root, d, 'README.md'))) out.push(`${d}/README.md`);
  }
  return out.sort();
}

function blockOwners(): Map<string, Section> {
  const m = new Map<string, Section>();
  for (const s of SECTIONS) for (const b of Object.keys(s.blocks)) m.set(b, s);
  return m;
}

function cached(s: Section): boolean {
  const dir = join(cacheRoot, s.name);
  return existsSync(join(dir, 'meta.json')) && s.produces.every((f) => existsSync(join(dir, f)));
}

/** The files of the shared data folder that a section needs and that are absent. */
function missingShared(s: Section): string[] {
  return (s.needs ?? []).map((f) => join(shared, f)).filter((p) => !existsSync(p));
}

/** Runs one section's command into its cache folder. @throws Error with the command's stderr tail on a non-zero exit */
function runSection(s: Section): number {
  const dir = join(cacheRoot, s.name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const args = s.args.map((a) => a.replaceAll('$SHARED', shared));
  process.stderr.write(`docs-gen: ${s.name}: ${s.display}\n`);
  const t0 = performance.now();
  const entry = join(root, s.script ?? 'packages/cli/src/bin.ts');
  const [exe, pre] = s.runner === 'python3' ? ['python3', []] : [process.execPath, ['--conditions=@kvmgr/source', '--import', 'tsx']];
  const r = spawnSync(exe, [...pre, entry, ...args], {
    cwd: dir,
    // absolute, so that a script resolving the data itself finds what `$SHARED` names
    env: { ...process.env, ...s.env, KVMGR_SHARED: shared },
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const wallS = (performance.now() - t0) / 1000;
  writeFileSync(join(dir, s.stdoutFile ?? 'stdout.txt'), r.stdout ?? '');
  writeFileSync(join(dir, 'stderr.txt'), r.stderr ?? '');
  if (r.status !== 0) {
    throw new Error(`docs-gen: section ${s.name} failed (exit ${r.status ?? r.signal}): ${s.display}\n${(r.stderr ?? '').split('\n').slice(-10).join('\n')}`);
  }
  writeFileSync(join(dir, 'meta.json'), `${JSON.stringify({ section: s.name, command: s.display, args, wallS: Number(wallS.toFixed(1)), finishedAt: new Date().toISOString(), loadAverage: loadavg()[0], cpus: cpus().length }, null, 2)}\n`);
  process.stderr.write(`docs-gen: ${s.name}: done in ${wallS.toFixed(1)} s\n`);
  return wallS;
}

const outputs: Outputs = (name) => {
  const dir = join(cacheRoot, name);
  if (!existsSync(join(dir, 'meta.json'))) throw new Error(`no cached output for section '${name}'; run: pnpm docs:gen ${name}`);
  return readOutput(dir, shared);
};

/**
 * Renders a block. When a section it reads has no cache: undefined (keep the block as it is),
 * except that an empty block gets a line naming the command that fills it when `placeholder`.
 */
function render(name: string, body: string, owners: Map<string, Section>, missing: Set<string>, placeholder: boolean): string | undefined {
  const s = owners.get(name);
  if (s === undefined) return undefined;
  try {
    return s.blocks[name]?.(outputs);
  } catch (e) {
    if (e instanceof Error && e.message.startsWith('no cached output')) {
      missing.add(e.message);
      return placeholder && body.trim() === '' ? `_Not generated yet: run \`pnpm docs:gen ${s.name}\`._` : undefined;
    }
    throw e;
  }
}

function unknownBlocks(owners: Map<string, Section>): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const f of docFiles()) {
    for (const b of findBlocks(readFileSync(join(root, f), 'utf8'), f)) {
      if (!owners.has(b.name)) problems.push(`${f}:${b.line}: gen block '${b.name}' belongs to no section of scripts/docs-gen/sections.ts`);
      seen.add(b.name);
    }
  }
  for (const b of owners.keys()) if (!seen.has(b)) problems.push(`block '${b}' (section ${owners.get(b)?.name}) appears in no doc`);
  return problems;
}

function lint(): string[] {
  const problems: string[] = [];
  for (const f of docFiles()) {
    for (const x of findUngeneratedNumbers(readFileSync(join(root, f), 'utf8'), f)) {
      problems.push(`${x.file}:${x.line}:${x.column}: '${x.text}' looks like a measurement outside a generated block: ${x.context.slice(0, 100)}`);
    }
  }
  return problems;
}

function main(): void {
  const argv = process.argv.slice(2);
  const check = argv.includes('--check');
  const rerun = argv.includes('--rerun');
  const owners = blockOwners();
  if (argv.includes('--list')) {
    for (const s of SECTIONS) process.stdout.write(`${s.name}\t${s.display}\n\tblocks: ${Object.keys(s.blocks).join(', ')}\n`);
    for (const [g, members] of Object.entries(GROUPS)) process.stdout.write(`group ${g}: ${members.join(' ')}\n`);
    return;
  }
  const names = argv.filter((a) => !a.startsWith('--')).flatMap((a) => GROUPS[a] ?? [a]);
  for (const n of names) {
    if (!SECTIONS.some((s) => s.name === n)) {
      throw new Error(`docs-gen: unknown section '${n}'; expected a group (${Object.keys(GROUPS).join(', ')}) or one of ${SECTIONS.map((s) => s.name).join(', ')}`);
    }
  }
  const noRun = argv.includes('--no-run');
  const toRun = noRun ? [] : SECTIONS.filter((s) => (names.length > 0 ? names.includes(s.name) : rerun || (!check && !cached(s))));
  const t0 = performance.now();
  const times: string[] = [];
  const problems: string[] = [];
  for (const s of toRun) {
    const absent = missingShared(s);
    if (absent.length > 0) {
      // A user with only the repository has no shared data: skip, keep the blocks' text.
      process.stderr.write(`docs-gen: ${s.name}: skipped: needs ${absent.join(', ')} (set KVMGR_SHARED to the shared data folder)\n`);
      continue;
    }
    // A failed section keeps the others going; its blocks are skipped below (no cache).
    try {
      times.push(`${s.name} ${runSection(s).toFixed(1)} s`);
    } catch (e) {
      problems.push(e instanceof Error ? e.message : String(e));
    }
  }
  if (toRun.length > 0) process.stderr.write(`docs-gen: ran ${times.join(', ') || 'nothing successfully'}; total ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);

  const missing = new Set<string>();
  problems.push(...unknownBlocks(owners));
  for (const f of docFiles()) {
    const path = join(root, f);
    const before = readFileSync(path, 'utf8');
    const { text } = replaceBlocks(before, f, (name, body) => render(name, body, owners, missing, !check));
    if (text === before) continue;
    if (check) problems.push(`${f}: generated blocks differ from their re-rendering (run: pnpm docs:gen)`);
    else {
      writeFileSync(path, text);
      process.stderr.write(`docs-gen: wrote ${relative(root, path)}\n`);
    }
  }
  for (const m of missing) process.stderr.write(`docs-gen: skipped blocks: ${m}\n`);
  if (check) problems.push(...lint());
  if (problems.length > 0) {
    process.stderr.write(`${problems.join('\n')}\n`);
    process.exitCode = 1;
  } else if (check) {
    process.stderr.write(`docs-check: ok (${docFiles().length} docs linted, ${owners.size} blocks)\n`);
  }
}

try {
  main();
} catch (e) {
  process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
  process.exitCode = 1;
}
