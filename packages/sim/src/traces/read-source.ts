/** Reads a trace from a file path or from given text. */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { KvmgrError } from '@kvmgr/core';

/** Where a trace comes from: a file path, or text with a name used in error messages. */
export type TraceSource = string | { readonly text: string; readonly name: string };

/**
 * Reads the source.
 * @throws KvmgrError `KVMGR_NOT_FOUND` when the file cannot be read.
 */
export function readSource(source: TraceSource): { text: string; name: string; file: string } {
  if (typeof source !== 'string') return { text: source.text, name: source.name, file: source.name };
  try {
    return { text: readFileSync(source, 'utf8'), name: basename(source), file: source };
  } catch (cause) {
    throw new KvmgrError('KVMGR_NOT_FOUND', `cannot read trace file ${JSON.stringify(source)}: ${(cause as Error).message}`, {
      cause,
      details: { file: source },
    });
  }
}
