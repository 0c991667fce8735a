#!/usr/bin/env node
/**
 * The `kvmgr` executable. Bad input ends with one line on stderr (`kvmgr: error: …`) and exit
 * code 2; other failures exit 1.
 */
import { isKvmgrError } from '@kvmgr/core';
import { CommanderError } from 'commander';
import { buildProgram } from './program.js';

const INPUT_CODES = new Set(['KVMGR_INVALID_ARGUMENT', 'KVMGR_BAD_TRACE', 'KVMGR_BAD_CONFIG', 'KVMGR_BAD_PIPELINE', 'KVMGR_NOT_FOUND']);

// `pnpm kvmgr …` runs the root package script from the repository root; relative paths the user
// typed (`--trace`, `--out`) mean where they ran it, which pnpm and npm pass as INIT_CWD.
if (process.env.npm_lifecycle_event === 'kvmgr' && process.env.INIT_CWD) process.chdir(process.env.INIT_CWD);

// `kvmgr list scorers | head`: a closed pipe ends the output, not the process with a stack trace.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(0);
  throw e;
});

async function main(): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(process.argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // commander already printed its message (or help/version)
      process.exitCode = e.exitCode === 0 ? 0 : 2;
      return;
    }
    if (isKvmgrError(e)) {
      process.stderr.write(`kvmgr: error: ${e.message}\n`);
      process.exitCode = INPUT_CODES.has(e.code) ? 2 : 1;
      return;
    }
    process.stderr.write(`kvmgr: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exitCode = 1;
  }
}

await main();
