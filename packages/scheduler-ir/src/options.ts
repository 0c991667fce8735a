/**
 * Pass option schemas: each pass declares its options with a type and a default; the parser
 * checks textual values against them and fills the defaults (the canonical form prints all).
 */

/** A resolved option value. */
export type OptionValue = number | boolean | string;

/** One option of a pass. */
export type OptionSpec =
  | { readonly type: 'int'; readonly default: number; readonly min?: number; readonly max?: number; readonly description: string }
  | { readonly type: 'number'; readonly default: number; readonly min?: number; readonly max?: number; readonly description: string }
  | { readonly type: 'bool'; readonly default: boolean; readonly description: string }
  | { readonly type: 'enum'; readonly default: string; readonly values: readonly string[]; readonly description: string };

/** Option name (kebab-case, as written in pipelines) → spec. */
export type OptionsSchema = Readonly<Record<string, OptionSpec>>;

/** Resolved options: every option of the schema, with defaults filled in. */
export type ResolvedOptions = Readonly<Record<string, OptionValue>>;

/**
 * Converts one textual value to the option's type; returns an error message (what was
 * expected) instead of throwing, so the parser can attach a span.
 */
export function coerceOption(spec: OptionSpec, text: string): { value: OptionValue } | { error: string } {
  switch (spec.type) {
    case 'int':
    case 'number': {
      const v = Number(text);
      const what = spec.type === 'int' ? 'an integer' : 'a number';
      if (text.trim() === '' || !Number.isFinite(v) || (spec.type === 'int' && !Number.isSafeInteger(v))) {
        return { error: `expected ${what}` };
      }
      if ((spec.min !== undefined && v < spec.min) || (spec.max !== undefined && v > spec.max)) {
        return { error: `expected ${what} in [${spec.min ?? '-inf'}, ${spec.max ?? 'inf'}]` };
      }
      return { value: v };
    }
    case 'bool':
      if (text === 'true' || text === '1') return { value: true };
      if (text === 'false' || text === '0') return { value: false };
      return { error: 'expected true or false' };
    case 'enum':
      if (spec.values.includes(text)) return { value: text };
      return { error: `expected one of ${spec.values.join(', ')}` };
  }
}

/** Prints a resolved value as it appears in a canonical pipeline. */
export function printOptionValue(value: OptionValue): string {
  return typeof value === 'string' ? value : String(value);
}

/** All defaults of a schema. */
export function defaultOptions(schema: OptionsSchema): Record<string, OptionValue> {
  const out: Record<string, OptionValue> = {};
  for (const [k, s] of Object.entries(schema)) out[k] = s.default;
  return out;
}
