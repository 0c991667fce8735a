/** Bad-row handling shared by the trace loaders. */
import { KvmgrError } from '@kvmgr/core';

/** Collects skipped rows in lenient mode, throws `KVMGR_BAD_TRACE` otherwise. */
export class RowErrors {
  skipped = 0;
  readonly reasons: string[] = [];
  constructor(
    private readonly file: string,
    private readonly lenient: boolean,
  ) {}

  /**
   * Reports a bad row.
   * @throws KvmgrError `KVMGR_BAD_TRACE` naming file, line and reason unless lenient.
   */
  bad(line: number, reason: string): void {
    if (!this.lenient) {
      throw new KvmgrError('KVMGR_BAD_TRACE', `${this.file}:${line}: ${reason}`, {
        details: { file: this.file, line, reason },
      });
    }
    this.skipped++;
    if (this.reasons.length < 20) this.reasons.push(`line ${line}: ${reason}`);
  }
}

/** Splits text into lines, tolerating CRLF. */
export function splitLines(text: string): string[] {
  return text.split(/\r?\n/);
}
