/**
 * The one YAML → schema config helper: every config file or inline YAML kvmgr reads (CLI
 * `--config`, experiment and workload files, router configs, inference-perf configs) is parsed
 * strictly here and validated with the caller's schema, so all of them fail the same way: one
 * `KvmgrError` `KVMGR_BAD_CONFIG` line `label: key.path: problem`.
 *
 * The schema is structural (`safeParse` returning `{ success, data | error.issues }`, the shape of
 * a zod 3 or 4 schema), so core needs no schema library; the packages that own a config keep
 * their zod schema next to it.
 *
 * @see eemeli/yaml: `parseDocument` (errors and warnings), `toJS({ maxAliasCount })`
 */
import { parseDocument } from 'yaml';
import { KvmgrError } from './errors.js';

/** One validation problem, as zod reports it. */
export interface ConfigIssue {
  /** Where, from the document root: keys and list indices. */
  readonly path: readonly PropertyKey[];
  /** What is wrong, one line. */
  readonly message: string;
  /** Unknown keys (zod's `unrecognized_keys` issue, whose `path` is their parent). */
  readonly keys?: readonly string[];
}

/** What {@link validateConfig} needs of a schema: zod's `safeParse`. */
export interface ConfigSchema<T> {
  safeParse(input: unknown): { readonly success: true; readonly data: T } | { readonly success: false; readonly error: { readonly issues: readonly ConfigIssue[] } };
}

/**
 * Parses YAML (JSON is YAML) strictly: the library's warnings (an unresolved tag such as
 * `!custom`, …) are errors rather than lines on stderr, duplicate keys are errors, and aliases
 * are capped at 100 expansions (billion-laughs guard).
 *
 * @param text - the document.
 * @param label - how messages name the source: a file name, `--config x.yaml`, `router config`.
 * @returns the document as plain JS (`null` for an empty document).
 * @throws KvmgrError `KVMGR_BAD_CONFIG` `label: not valid YAML (first line of the problem)`, with
 *   the library's error as `cause`.
 */
export function parseYamlText(text: string, label: string): unknown {
  try {
    const doc = parseDocument(text, { logLevel: 'silent', uniqueKeys: true });
    const problem = doc.errors[0] ?? doc.warnings[0];
    if (problem !== undefined) throw new Error(problem.message);
    return doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    throw new KvmgrError('KVMGR_BAD_CONFIG', `${label}: not valid YAML (${(e as Error).message.split('\n')[0]})`, { cause: e });
  }
}

/**
 * Where an issue points, for messages: `a.b.0.c`; the unknown keys for an unknown-key issue at
 * the root (`bogus, other`); `(root)` for the document itself.
 */
export function configIssuePath(issue: ConfigIssue | undefined): string {
  if (issue === undefined) return '(root)';
  const path = issue.path.map(String).join('.');
  const keys = issue.keys?.join(', ');
  if (path === '') return keys || '(root)';
  return keys ? `${path}.${keys}` : path;
}

/**
 * Validates a parsed config with a schema.
 *
 * @param value - the parsed document (or an object built in code).
 * @param schema - a zod schema (or anything with its `safeParse`).
 * @param label - how messages name the source.
 * @returns the schema's output (defaults filled in, as the schema defines).
 * @throws KvmgrError `KVMGR_BAD_CONFIG` `label: key.path: problem` for the first issue, with
 *   `details.key` (that path) and `details.issues` (all of them).
 */
export function validateConfig<T>(value: unknown, schema: ConfigSchema<T>, label: string): T {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const key = configIssuePath(issue);
  throw new KvmgrError('KVMGR_BAD_CONFIG', `${label}: ${key}: ${issue?.message ?? 'invalid'}`, { details: { key, issues: r.error.issues } });
}

/**
 * YAML text → validated config: {@link parseYamlText} then {@link validateConfig}.
 * @throws KvmgrError `KVMGR_BAD_CONFIG` as those two.
 */
export function parseConfigText<T>(text: string, schema: ConfigSchema<T>, label: string): T {
  return validateConfig(parseYamlText(text, label), schema, label);
}
