/** Number formatting for generated prose: the same digits the CLI prints, with thousands separators. */

/**
 * A number with fixed decimals and `,` thousands separators (`10674.5` → `10,674.5` at 1 digit).
 * @param n - the value; `-` when undefined or not finite
 * @param digits - decimals @default 0
 */
export function num(n: number | null | undefined, digits = 0): string {
  if (n === undefined || n === null || !Number.isFinite(n)) return '-';
  const [int, frac] = Math.abs(n).toFixed(digits).split('.');
  const grouped = (int as string).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return `${n < 0 && Number(`${int}.${frac ?? 0}`) !== 0 ? '−' : ''}${grouped}${frac === undefined ? '' : `.${frac}`}`;
}

/** A fraction 0..1 as a percentage (`0.873` → `87.3%`). @param digits - decimals @default 1 */
export function pct(fraction: number | null | undefined, digits = 1): string {
  if (fraction === undefined || fraction === null) return '-';
  return `${num(fraction * 100, digits)}%`;
}

/** Relative change of `b` against `a` as a signed percentage (`−26.5%`); `-` when `a` is 0. */
export function change(a: number, b: number, digits = 1): string {
  if (a === 0 || !Number.isFinite(a) || !Number.isFinite(b)) return '-';
  const d = ((b - a) / Math.abs(a)) * 100;
  return `${d >= 0 ? '+' : '−'}${Math.abs(d).toFixed(digits)}%`;
}

/** Ratio `b / a` as `1.43×`; `-` when `a` is 0. @param digits - decimals @default 2 */
export function ratio(a: number, b: number, digits = 2): string {
  if (!(a > 0) || !Number.isFinite(b)) return '-';
  return `${(b / a).toFixed(digits)}×`;
}

/** A rate scale as the CLI writes it (`×0.75`). */
export function rate(x: number): string {
  return `×${x}`;
}

/** A markdown table from a header and rows (cells are written as given). */
export function mdTable(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const line = (cells: readonly string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/** A fenced code block showing a command and its output, trailing spaces removed. */
export function transcript(command: string, stdout: string): string {
  const body = stdout
    .split('\n')
    .map((l) => l.trimEnd())
    .join('\n')
    .replace(/\n+$/, '');
  return ['```', `$ ${command}`, body, '```'].join('\n');
}
