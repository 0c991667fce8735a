/**
 * Release check: publishes every workspace package to a real npm registry on loopback
 * (Verdaccio, started in this process on 127.0.0.1 with an ephemeral port and a temporary
 * storage folder), then installs each package ALONE into an empty scratch project with npm —
 * `@kvmgr/*` from the loopback registry, everything else from the machine's npm registry — and
 * runs the first TypeScript example of the package's README against the installed copy (or,
 * with no example, imports the package and checks it exports something). Last, `npx kvmgr
 * replay --limit 200` runs from an install of `kvmgr` alone.
 *
 * What it proves: the tarballs a release would publish (pnpm rewrites `workspace:*` ranges to
 * real versions, `files`/`exports` are complete, types are included) install and work for a
 * user who installs one module.
 *
 * Usage (after `pnpm build`): `pnpm release:check [--only @kvmgr/core,kvmgr] [--keep] [--jobs N]` (packages
 * published and installed N at a time, default 4).
 * Exit code 1 and one line per failing package when anything fails. Needs network access to
 * the npm registry for third-party dependencies.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runServer } from 'verdaccio';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const TSX = join(ROOT, 'node_modules', '.bin', 'tsx');

interface WorkspacePackage {
  readonly name: string;
  readonly dir: string;
  readonly version: string;
  readonly private: boolean;
  readonly bin: boolean;
}

function workspacePackages(): WorkspacePackage[] {
  const dirs = [...readdirSync(join(ROOT, 'packages')).map((d) => join(ROOT, 'packages', d)), join(ROOT, 'native')];
  const out: WorkspacePackage[] = [];
  for (const dir of dirs) {
    const file = join(dir, 'package.json');
    if (!existsSync(file)) continue;
    const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name: string; version: string; private?: boolean; bin?: unknown };
    out.push({ name: pkg.name, dir, version: pkg.version, private: pkg.private === true, bin: pkg.bin !== undefined });
  }
  return out;
}

/**
 * Runs a command without blocking the event loop (the registry answers from this process, so
 * a synchronous spawn would deadlock it). Output is kept for the failure report.
 */
function run(cmd: string, args: readonly string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<{ ok: boolean; output: string }> {
  return new Promise((done) => {
    const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (b: Buffer) => {
      output += b.toString('utf8');
    });
    child.stderr.on('data', (b: Buffer) => {
      output += b.toString('utf8');
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 300_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      done({ ok: false, output: `${output}\n${err.message}` });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ ok: code === 0, output });
    });
  });
}

/** The first ```ts block of a README, or undefined. */
function readmeExample(dir: string): string | undefined {
  const file = join(dir, 'README.md');
  if (!existsSync(file)) return undefined;
  const m = /```ts\n([\s\S]*?)```/.exec(readFileSync(file, 'utf8'));
  return m?.[1];
}

async function startRegistry(work: string, upstream: string): Promise<{ url: string; server: Server }> {
  const config = join(work, 'verdaccio.yaml');
  writeFileSync(
    config,
    [
      `storage: ${join(work, 'storage')}`,
      'auth:',
      '  htpasswd:',
      `    file: ${join(work, 'htpasswd')}`,
      'uplinks:',
      '  npmjs:',
      `    url: ${upstream}`,
      '    timeout: 60s',
      'packages:',
      "  '@kvmgr/*':",
      '    access: $all',
      '    publish: $authenticated',
      "  'kvmgr':",
      '    access: $all',
      '    publish: $authenticated',
      "  '**':",
      '    access: $all',
      '    proxy: npmjs',
      'log: { type: stdout, format: pretty, level: error }',
      '',
    ].join('\n'),
  );
  const server = (await runServer(config)) as Server;
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => ok());
  });
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/`, server };
}

async function addUser(url: string): Promise<string> {
  const res = await fetch(`${url}-/user/org.couchdb.user:release-check`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'release-check', password: 'release-check-password', email: 'ci@kvmgr.invalid' }),
  });
  const body = (await res.json()) as { token?: string };
  if (!res.ok || typeof body.token !== 'string') throw new Error(`registry refused the user: HTTP ${res.status} ${JSON.stringify(body)}`);
  return body.token;
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  const onlyArg = argv.indexOf('--only');
  const only = onlyArg >= 0 ? new Set((argv[onlyArg + 1] ?? '').split(',').filter(Boolean)) : undefined;
  const keep = argv.includes('--keep');
  const jobsArg = argv.indexOf('--jobs');
  const jobs = jobsArg >= 0 ? Number(argv[jobsArg + 1]) : 4;
  if (!Number.isInteger(jobs) || jobs < 1) {
    console.error(`release-check: --jobs ${argv[jobsArg + 1]}: expected a positive integer`);
    return 2;
  }

  const packages = workspacePackages().filter((p) => !p.private);
  for (const p of packages) {
    if (!existsSync(join(p.dir, 'dist'))) {
      console.error(`release-check: ${p.name} has no dist/ (run \`pnpm build\` first)`);
      return 2;
    }
  }
  const work = mkdtempSync(join(tmpdir(), 'kvmgr-release-'));
  // Third-party dependencies come through the loopback registry from the machine's own
  // registry (an uplink); `@kvmgr/*` and `kvmgr` exist only on loopback (never proxied).
  const upstream = (await run('npm', ['config', 'get', 'registry'], ROOT)).output.trim().split('\n').filter((l) => /^https?:/.test(l))[0] ?? 'https://registry.npmjs.org/';
  const { url, server } = await startRegistry(work, upstream);
  const failures: string[] = [];
  try {
    const token = await addUser(url);
    const host = url.replace(/^http:/, '');
    const npmrc = join(work, 'npmrc');
    writeFileSync(npmrc, `registry=${url}\n${host}:_authToken=${token}\nfund=false\naudit=false\nupdate-notifier=false\n`);
    // pnpm passes npm_config_registry to scripts; it would win over the userconfig file.
    const env = { npm_config_userconfig: npmrc, NPM_CONFIG_USERCONFIG: npmrc, npm_config_registry: url };
    console.log(`release-check: Verdaccio on ${url}; publishing ${packages.length} packages`);

    // pnpm publish rewrites workspace:* ranges to the versions being published (as
    // `changeset publish` does, which calls it).
    const publishStarted = Date.now();
    await eachLimited(packages, jobs, async (p) => {
      const r = await run('pnpm', ['publish', '--registry', url, '--no-git-checks', '--access', 'public'], p.dir, env);
      if (!r.ok) failures.push(`${p.name}: publish failed\n${r.output.trim().split('\n').slice(-15).join('\n')}`);
    });
    if (failures.length > 0) return report(failures);
    console.log(`release-check: published ${packages.length} packages (${((Date.now() - publishStarted) / 1000).toFixed(1)} s, ${jobs} at a time)`);

    // Each package installs into its own scratch project, so the installs are independent;
    // npm's cache is safe to share between concurrent installs.
    await eachLimited(packages, jobs, async (p) => {
      if (only && !only.has(p.name)) return;
      const scratch = join(work, `install-${p.name.replace(/[@/]/g, '_')}`);
      mkdirSync(scratch);
      writeFileSync(join(scratch, 'package.json'), JSON.stringify({ name: 'scratch', private: true, type: 'module' }, null, 2));
      const started = Date.now();
      const inst = await run('npm', ['install', `${p.name}@${p.version}`, '--no-audit', '--no-fund', '--loglevel=error'], scratch, env);
      if (!inst.ok) {
        failures.push(`${p.name}: npm install failed\n${inst.output.trim().split('\n').slice(-15).join('\n')}`);
        return;
      }
      const manifest = JSON.parse(readFileSync(join(scratch, 'node_modules', ...p.name.split('/'), 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
      const leftover = Object.entries(manifest.dependencies ?? {}).filter(([, v]) => v.startsWith('workspace:'));
      if (leftover.length > 0) failures.push(`${p.name}: published manifest still has workspace: ranges (${leftover.map(([k]) => k).join(', ')})`);

      const example = readmeExample(p.dir);
      let what: string;
      if (example !== undefined) {
        writeFileSync(join(scratch, 'example.ts'), example);
        const r = await run(TSX, ['example.ts'], scratch);
        what = 'README example';
        if (!r.ok) failures.push(`${p.name}: README example failed\n${r.output.trim().split('\n').slice(-15).join('\n')}`);
      } else {
        writeFileSync(join(scratch, 'smoke.mjs'), `const m = await import(${JSON.stringify(p.name)});\nif (Object.keys(m).length === 0) { console.error('no exports'); process.exit(1); }\n`);
        const r = await run(process.execPath, ['smoke.mjs'], scratch);
        what = 'import (no README example)';
        if (!r.ok) failures.push(`${p.name}: import failed\n${r.output.trim().split('\n').slice(-15).join('\n')}`);
      }
      if (p.bin) {
        const r = await run('npx', ['--no-install', 'kvmgr', 'replay', '--limit', '200', '--no-progress', '--out', join(scratch, 'report')], scratch, env);
        what += ' + npx kvmgr replay --limit 200';
        if (!r.ok || !existsSync(join(scratch, 'report', 'report.json'))) failures.push(`${p.name}: npx kvmgr replay failed\n${r.output.trim().split('\n').slice(-15).join('\n')}`);
      }
      console.log(`release-check: ${p.name} installed alone and ran its ${what} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
    });
    return report(failures);
  } finally {
    await new Promise<void>((ok) => server.close(() => ok()));
    if (!keep) rmSync(work, { recursive: true, force: true });
    else console.log(`release-check: kept ${work}`);
  }
}

/** Runs `fn` over `items`, at most `limit` at a time; resolves when all have settled. */
async function eachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

function report(failures: readonly string[]): number {
  if (failures.length === 0) {
    console.log('release-check: every package installs alone from the registry and works');
    return 0;
  }
  for (const f of failures) console.error(`release-check: FAIL ${f}`);
  return 1;
}

process.exitCode = await main();
