/**
 * `kvmgr ir opt STATE --pass-pipeline=…`: runs a pass pipeline over one recorded scheduler
 * state, like `mlir-opt`, through `@kvmgr/scheduler-ir`'s `runOpt`.
 */
import { readFileSync } from 'node:fs';
import { KvmgrError } from '@kvmgr/core';
import { runOpt } from '@kvmgr/scheduler-ir';

/** Flags of `kvmgr ir opt`. */
export interface IrOptFlags {
  passPipeline: string;
  printIrAfterAll?: boolean;
  timing?: boolean;
  passStatistics?: boolean;
  verify?: boolean;
}

/** Runs `kvmgr ir opt`. */
export async function runIrOpt(statePath: string, flags: IrOptFlags): Promise<void> {
  let stateText: string;
  try {
    stateText = readFileSync(statePath, 'utf8');
  } catch (e) {
    throw new KvmgrError('KVMGR_NOT_FOUND', `ir opt: cannot read state file ${statePath} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { cause: e });
  }
  const out = runOpt({
    stateText,
    pipeline: flags.passPipeline,
    printIrAfterAll: flags.printIrAfterAll === true,
    timing: flags.timing === true,
    passStatistics: flags.passStatistics === true,
    verify: flags.verify === true,
  });
  process.stdout.write(out.endsWith('\n') ? out : `${out}\n`);
}
