/**
 * The one tsup config every package builds with (`tsup --config ../../tsup.config.ts`).
 * ESM + .d.ts from `src/index.ts` (plus `src/bin.ts` when a package has a CLI entry),
 * dependencies external, Node 20 target.
 */
import { existsSync } from 'node:fs';
import { defineConfig } from 'tsup';

const entry = ['src/index.ts'];
if (existsSync('src/bin.ts')) entry.push('src/bin.ts');

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
