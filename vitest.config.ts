/**
 * One root vitest config with a project per package (packages/*, native). Tests run on
 * sources through the `@kvmgr/source` export condition, so no package must be built first.
 */
import { existsSync, readdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { defineConfig } from 'vitest/config';
import { SummaryReporter } from './vitest.summary-reporter.js';

const dirs = [
  ...readdirSync('packages', { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join('packages', d.name, 'package.json')))
    .map((d) => join('packages', d.name)),
  ...(existsSync('native/package.json') ? ['native'] : []),
];

export default defineConfig({
  resolve: { conditions: ['@kvmgr/source'] },
  ssr: { resolve: { conditions: ['@kvmgr/source'] } },
  test: {
    reporters: ['default', new SummaryReporter()],
    // vitest's default in run mode is one worker per CPU less one: a single worker on a 2-core
    // machine (CI's), where most test files wait on sockets and child processes rather than the
    // CPU. Two workers there took the suite from 597 s to 436 s of wall time, with no failures.
    maxWorkers: Math.max(2, availableParallelism() - 1),
    projects: dirs.map((root) => ({
      extends: true,
      test: {
        name: root === 'native' ? 'native' : root.slice('packages/'.length),
        root,
        include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
        testTimeout: 60_000,
        hookTimeout: 60_000,
      },
    })),
  },
});
