/** Paths of the shared data (`../shared` next to the repository root) and of the bundled data. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';

/** `<repo>/../shared`. */
export const SHARED = join(import.meta.dirname, '../../../../shared');
/** Real traces. */
export const TRACES = join(SHARED, 'traces');
/** Validation data. */
export const VALIDATION = join(SHARED, 'validation');
/** The Mooncake conversation trace. */
export const MOONCAKE = join(TRACES, 'mooncake_fast25_conversation_trace.jsonl');
/** The bundled Mooncake sample: the first 3,000 lines of {@link MOONCAKE}, unchanged (see its README). */
export const MOONCAKE_SAMPLE = join(import.meta.dirname, '../../cli/data/mooncake-conversation-sample.jsonl');
/** The sim's own validation fixture in the `shared/validation` layout. */
export const VALIDATION_MINI = join(import.meta.dirname, 'fixtures/validation-mini');

/**
 * `''` when every file exists, else ` (skipped: <first missing file> not found; …)` to append to the
 * name of a test that `it.skipIf(note !== '')` skips: a clone without `../shared` says why.
 */
export function skipNote(...files: string[]): string {
  const missing = files.find((f) => !existsSync(f));
  return missing === undefined ? '' : ` (skipped: ${missing} not found; it is in the shared data beside the repository)`;
}
