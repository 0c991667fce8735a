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

/**
 * The rows of the first markdown table in `text` (lines starting with `|`), as records from
 * header cell to cell text (trimmed); the separator row is skipped.
 * @returns [] when there is no table
 */
export function parseMdTable(text: string): Record<string, string>[] {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.trimStart().startsWith('|'));
  if (start < 0) return [];
  const cells = (l: string) =>
    l
      .trim()
      .replace(/^\||\|$/g, '')
      .split('|')
      .map((c) => c.trim());
  const header = cells(lines[start] as string);
  const rows: Record<string, string>[] = [];
  for (const l of lines.slice(start + 1)) {
    if (!l.trimStart().startsWith('|')) break;
    const c = cells(l);
    if (c.every((x) => /^:?-+:?$/.test(x))) continue;
    rows.push(Object.fromEntries(header.map((h, i) => [h, c[i] ?? ''])));
  }
  return rows;
}

/** The markdown table block of `text`: its lines from the first `|` line to the last consecutive one. */
export function mdTableText(text: string): string {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.trimStart().startsWith('|'));
  if (start < 0) return '';
  let end = start;
  while (end + 1 < lines.length && (lines[end + 1] as string).trimStart().startsWith('|')) end++;
  return lines.slice(start, end + 1).join('\n');
}

/** One row of the table `bench/run.ts` prints. Times in µs; undefined where the runner printed `-`. */
export interface BenchRow {
  readonly suite: string;
  readonly name: string;
  readonly meanUs: number;
  readonly p50Us: number | undefined;
  readonly p99Us: number | undefined;
  /** Baseline's mean ÷ this case's mean, when the case names a baseline. */
  readonly speedup: number | undefined;
}

/**
 * The rows of `bench/run.ts`'s table (columns separated by two or more spaces: suite, case,
 * ops/s, mean µs, ±%, p50 µs, p99 µs, vs baseline).
 */
export function parseBenchTable(stdout: string): BenchRow[] {
  const lines = stdout.split('\n');
  const head = lines.findIndex((l) => l.startsWith('suite') && l.includes('mean µs'));
  if (head < 0) return [];
  const rows: BenchRow[] = [];
  for (const l of lines.slice(head + 2)) {
    if (l.trim() === '' || l.startsWith(' ')) break;
    const c = l.split(/\s{2,}/);
    const n = (x: string | undefined) => (x === undefined || x === '-' ? undefined : Number(x));
    rows.push({ suite: c[0] as string, name: c[1] as string, meanUs: Number(c[3]), p50Us: n(c[5]), p99Us: n(c[6]), speedup: n(/^([\d.]+)×/.exec(c[7] ?? '')?.[1]) });
  }
  return rows;
}
