/**
 * The one tsup config every package builds with (`tsup --config ../../tsup.config.ts`).
 * ESM + .d.ts from `src/index.ts` (plus `src/bin.ts` when a package has a CLI entry, and the
 * source file of every other subpath in its `exports`, e.g. `@kvmgr/adapter-vllm/profiles`),
 * dependencies external, Node 20 target.
 */
import { existsSync, readFileSync } from 'node:fs';
import { defineConfig } from 'tsup';

const entry = ['src/index.ts'];
if (existsSync('src/bin.ts')) entry.push('src/bin.ts');
const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { exports?: Record<string, string | Record<string, string>> };
for (const target of Object.values(pkg.exports ?? {})) {
  const source = typeof target === 'object' ? target['@kvmgr/source'] : undefined;
  if (source !== undefined && !entry.includes(source.replace(/^\.\//, ''))) entry.push(source.replace(/^\.\//, ''));
}

export default defineConfig({
  entry,
  format: ['esm'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
  platform: 'node',
  splitting: false,
  treeshake: true,
});
