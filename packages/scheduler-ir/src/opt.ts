/**
 * `kvmgr ir opt`: the opt-style driver behind the CLI. Reads a state, runs a pipeline, and
 * returns the text to print (IR dumps, plan, timing and statistics reports).
 */
import { createDefaultRegistry } from './builtin.js';
import { PassManager } from './pass-manager.js';
import type { SchedAnalyses } from './pass.js';
import type { PassRegistry } from './registry.js';
import { parseState, printPlan, printStepIR } from './text.js';

/** Options of {@link runOpt}. */
export interface RunOptOptions {
  /** The state, in the text form of `printState`. A leading `// configuration:` line is ignored. */
  readonly stateText: string;
  /** `--pass-pipeline`: pipeline text or preset name. */
  readonly pipeline: string;
  /** `--print-ir-after-all`. @default false */
  readonly printIrAfterAll?: boolean;
  /** `--timing`. @default false */
  readonly timing?: boolean;
  /** `--pass-statistics`. @default false */
  readonly passStatistics?: boolean;
  /** `--verify-each`. @default true */
  readonly verify?: boolean;
  /** @default the built-in registry */
  readonly registry?: PassRegistry;
  readonly analyses?: SchedAnalyses;
}

/**
 * Runs one step and renders the output like `mlir-opt`: IR dumps after each pass (when asked),
 * the plan, then the timing and statistics reports.
 * @throws KvmgrError `KVMGR_BAD_PIPELINE`, `KVMGR_BAD_CONFIG`/`KVMGR_INVALID_ARGUMENT` (state),
 *   `KVMGR_VERIFY_FAILED`, `KVMGR_PASS_FAILED` (with a reproducer in `details`).
 */
export function runOpt(options: RunOptOptions): string {
  const text = options.stateText.replace(/^\s*\/\/[^\n]*\n/, '');
  const state = parseState(text);
  const pm = new PassManager({
    pipeline: options.pipeline,
    registry: options.registry ?? createDefaultRegistry(),
    analyses: options.analyses ?? {},
    verify: options.verify ?? true,
    timing: options.timing ?? false,
  });
  const out: string[] = [];
  if (options.printIrAfterAll) {
    pm.addInstrumentation({
      runAfterPass(pass, ir) {
        out.push(`// -----// IR Dump After ${pass.argument} (${pass.anchorPath}) //----- //`, printStepIR(ir));
      },
    });
  }
  const plan = pm.run(state);
  out.push(`// pipeline: ${pm.canonical}`, `// experiment id: ${pm.id}`, printPlan(plan));
  if (options.timing) out.push(pm.printTiming());
  if (options.passStatistics) out.push(pm.printStatistics());
  return `${out.join('\n')}\n`;
}
