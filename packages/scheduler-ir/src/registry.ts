/**
 * The pass registry: name → definition, plus named pipeline presets.
 */
import { KvmgrError, invalidArgument } from '@kvmgr/core';
import { PASS_KINDS, type PassDefinition } from './pass.js';

const NAME_RE = /^[a-z][a-z0-9-]*$/;

/** Names passes and presets; the parser resolves names through it. */
export class PassRegistry {
  private readonly passes = new Map<string, PassDefinition>();
  private readonly presets = new Map<string, string>();

  /**
   * Registers a pass.
   * @param def - the definition; `argument` must be kebab-case and unused, `kind` one of
   *   `order` / `annotate` / `materialize` / `observe`, statistic names kebab-case and unique.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a bad or taken name, a missing or unknown
   *   `kind`, no anchors, a `materialize` pass that may anchor below `sched.step`, or a bad or
   *   repeated statistic name.
   */
  register(def: PassDefinition): this {
    if (!NAME_RE.test(def.argument)) throw invalidArgument('pass argument', def.argument, 'a kebab-case name');
    if (this.passes.has(def.argument) || this.presets.has(def.argument)) {
      throw new KvmgrError('KVMGR_INVALID_ARGUMENT', `pass ${JSON.stringify(def.argument)} is already registered`, {
        details: { field: 'pass argument', value: def.argument },
      });
    }
    if (!PASS_KINDS.includes(def.kind)) throw invalidArgument(`${def.argument}.kind`, def.kind, `one of ${PASS_KINDS.join(', ')}`);
    if (def.anchors.length === 0) throw invalidArgument(`${def.argument}.anchors`, def.anchors, 'at least one anchor');
    // a plan is made for the whole step: a queue anchor cannot materialize one
    if (def.kind === 'materialize' && def.anchors.some((a) => a !== 'sched.step')) {
      throw invalidArgument(`${def.argument}.anchors`, def.anchors, 'only sched.step for a materialize pass');
    }
    const seen = new Set<string>();
    for (const st of def.statistics) {
      if (!NAME_RE.test(st.name) || seen.has(st.name)) throw invalidArgument(`${def.argument}.statistics`, st.name, 'unique kebab-case statistic names');
      seen.add(st.name);
    }
    this.passes.set(def.argument, def);
    return this;
  }

  /**
   * Registers a named pipeline (e.g. `vllm-default`), usable wherever a pipeline is parsed.
   * @param name - kebab-case, not a pass name.
   * @param pipeline - pipeline text (validated when first parsed).
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a bad or taken name.
   */
  registerPreset(name: string, pipeline: string): this {
    if (!NAME_RE.test(name)) throw invalidArgument('preset name', name, 'a kebab-case name');
    if (this.passes.has(name) || this.presets.has(name)) {
      throw new KvmgrError('KVMGR_INVALID_ARGUMENT', `name ${JSON.stringify(name)} is already registered`, {
        details: { field: 'preset name', value: name },
      });
    }
    this.presets.set(name, pipeline);
    return this;
  }

  /** The pass named `argument`, or undefined. */
  get(argument: string): PassDefinition | undefined {
    return this.passes.get(argument);
  }

  /** The preset pipeline text named `name`, or undefined. */
  getPreset(name: string): string | undefined {
    return this.presets.get(name);
  }

  /** Registered pass names, sorted. */
  passNames(): string[] {
    return [...this.passes.keys()].sort();
  }

  /** Registered preset names, sorted. */
  presetNames(): string[] {
    return [...this.presets.keys()].sort();
  }

  /** A copy (to add passes without touching a shared registry). */
  clone(): PassRegistry {
    const r = new PassRegistry();
    for (const d of this.passes.values()) r.passes.set(d.argument, d);
    for (const [k, v] of this.presets) r.presets.set(k, v);
    return r;
  }
}
