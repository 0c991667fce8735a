/** Plain-text tables for the terminal. */

/** Pads columns to their widest cell; first column left-aligned, the rest right-aligned. */
export function formatTable(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** Formats a number for a table: fixed digits, `-` for missing or NaN. */
export function fmtNum(n: number | undefined, digits = 1): string {
  if (n === undefined || !Number.isFinite(n)) return '-';
  return n.toFixed(digits);
}

/** Formats a relative change `b` vs `a` as a signed percentage (`+12.3%`). */
/**
 * Change of a percentage in percentage points (`+1.7 pt`): the relative change of a percentage
 * ("hit rate +75%") reads as if the percentage itself had grown by that much.
 */
export function fmtPointsDelta(a: number | undefined, b: number | undefined, digits = 1): string {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b)) return '-';
  const d = b - a;
  return `${d >= 0 ? '+' : ''}${d.toFixed(digits)} pt`;
}

export function fmtDelta(a: number | undefined, b: number | undefined): string {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || a === 0) return '-';
  const d = ((b - a) / Math.abs(a)) * 100;
  return `${d >= 0 ? '+' : ''}${d.toFixed(1)}%`;
}
