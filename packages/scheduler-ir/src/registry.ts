/**
 * The pass registry: name → definition, plus named pipeline presets.
 */
import { KvmgrError, invalidArgument } from '@kvmgr/core';
import type { PassDefinition } from './pass.js';

const NAME_RE = /^[a-z][a-z0-9-]*$/;

/** Names passes and presets; the parser resolves names through it. */
export class PassRegistry {
  private readonly passes = new Map<string, PassDefinition>();
  private readonly presets = new Map<string, string>();

  /**
   * Registers a pass.
   * @param def - the definition; `argument` must be kebab-case and unused.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a bad or taken name, or a default outside its schema.
   */
  register(def: PassDefinition): this {
    if (!NAME_RE.test(def.argument)) throw invalidArgument('pass argument', def.argument, 'a kebab-case name');
    if (this.passes.has(def.argument) || this.presets.has(def.argument)) {
      throw new KvmgrError('KVMGR_INVALID_ARGUMENT', `pass ${JSON.stringify(def.argument)} is already registered`, {
        details: { field: 'pass argument', value: def.argument },
      });
    }
    if (def.anchors.length === 0) throw invalidArgument(`${def.argument}.anchors`, def.anchors, 'at least one anchor');
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
