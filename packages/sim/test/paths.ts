/** Paths of the shared data (`../shared` next to the repository root). */
import { join } from 'node:path';

/** `<repo>/../shared`. */
export const SHARED = join(import.meta.dirname, '../../../../shared');
/** Real traces. */
export const TRACES = join(SHARED, 'traces');
/** Validation data. */
export const VALIDATION = join(SHARED, 'validation');
/** The Mooncake conversation trace. */
export const MOONCAKE = join(TRACES, 'mooncake_fast25_conversation_trace.jsonl');
