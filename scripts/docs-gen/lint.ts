/**
 * The number lint of `pnpm docs:check`: every number in the docs that looks like a measurement
 * must sit inside a generated block (`<!-- gen:NAME -->` … `<!-- /gen:NAME -->`, or the
 * experiment pages' `BEGIN GENERATED` … `END GENERATED`), so that `scripts/docs-gen.ts`
 * reproduces it.
 *
 * Looks like a measurement: a decimal (`2.633`, `1.43×`), a percentage or points (`14.6%`,
 * `+2.6 pt`), or an integer with a unit of time or rate (`7842 ms`, `27 s`, `3 req/s`).
 * Not flagged:
 * - numbers inside inline code (flags and config values: `--rate-scale 2.5`), link targets,
 *   HTML comments and URLs;
 * - code blocks in a language (`ts`, `yaml`, `json`, …): code and config, not output;
 * - in untyped / shell code blocks, the lines that are commands (`$ …`, `pnpm …`, `node …`,
 *   `cd …`, `# comment`, continuation lines); the other lines are command output and are linted;
 * - thresholds and targets written with a comparison (`≥ 90%`, `≤ 5%`, `< 1%`);
 * - rate multipliers written `×N` (`at ×1.5`: a flag value), and integer ratios (`2×`, a goal);
 * - versions (`0.15.1`, `v0.11.0`, `Llama-3.1-8B`, `Qwen2.5`), dates, issue numbers (`#18`),
 *   identifiers (`H100`, `fp8`), sizes written with a suffix (`12k`, `32K`);
 * - plain integers without a unit (counts such as `3,000 requests`: the lint cannot tell a
 *   count of the data from a measured count; keep measured counts in generated blocks anyway);
 * - phrases in {@link ALLOWED_PHRASES}.
 */

/** One number outside a generated block that looks like a measurement. */
export interface NumberFinding {
  readonly file: string;
  /** 1-based. */
  readonly line: number;
  /** 1-based column of the number. */
  readonly column: number;
  /** The number with its unit, as written. */
  readonly text: string;
  /** The line, trimmed. */
  readonly context: string;
}

/**
 * Phrases that contain numbers but are not measurements, blanked before the scan. Each one says
 * why; keep this list short (a measurement belongs in a generated block instead).
 */
export const ALLOWED_PHRASES: readonly { readonly pattern: RegExp; readonly why: string }[] = [
  { pattern: /\bvLLM( v)? ?\d+\.\d+(\.\d+)?/g, why: 'vLLM version' },
  { pattern: /\b(SGLang|TGI|LMDeploy|Node(\.js)?|Python|CUDA|ROCm|TypeScript|pnpm|npm|vitest|Biome|Redis|Chromium|Debian) ?\d+(\.\d+)*/g, why: 'tool version' },
  { pattern: /\bHTTP\/\d(\.\d)?/g, why: 'protocol version' },
  { pattern: /\bSLOs?( TTFT| TPOT|,| of| targets?)? (≤ )?\d+ ?m?s( and| \/| ,)?( TPOT)? ?(≤ )?(\d+ ?m?s)?/g, why: 'SLO targets are configuration' },
  { pattern: /\b(TTFT|TPOT) (≤|<=|=) ?\d+ ?m?s/g, why: 'SLO targets are configuration' },
  { pattern: /\d+(\.\d+)? ?(GiB|GB|MiB|MB|KiB|TB) (CPU|host|GPU|HBM|disk)( KV)? (tier|memory|cache)/g, why: 'configured memory sizes' },
  { pattern: /\b\d+ ?m?s (TTFT |TPOT )?SLO|\ba \d+ ?m?s (TTFT|TPOT)\b/g, why: 'SLO targets are configuration' },
  { pattern: /(\b|-)\d+% (confidence|CIs?\b|intervals?\b)|(bootstrap|Student-t) \d+%/g, why: 'confidence level of an interval' },
  { pattern: /\(?\bdefault:? \d+(\.\d+)? ?[a-zµ]*\)?/g, why: 'default values of options' },
  { pattern: /\b[45]\d\ds\b/g, why: 'HTTP status classes (500s)' },
  { pattern: /\bmin\([^)]*\d+%\)/g, why: 'clipping constant of a fit objective' },
  { pattern: /\b(mfu|attention mfu|HBM efficiency|efficiency|safety|margin|alpha|beta|gamma|quantile|utilization|fraction|ratio|weight|smallRatio|ghostRatio|gpu_memory_utilization) (of )?\d+(\.\d+)?\b(?!%)/gi, why: 'configuration values named in prose' },
];

const CODE_LANGS = new Set([
  'ts',
  'typescript',
  'tsx',
  'js',
  'javascript',
  'mjs',
  'json',
  'jsonc',
  'yaml',
  'yml',
  'toml',
  'ini',
  'python',
  'py',
  'c',
  'cpp',
  'c++',
  'h',
  'proto',
  'protobuf',
  'mermaid',
  'diff',
  'dockerfile',
  'http',
  'promql',
  'prometheus',
  'csv',
  'jsonl',
  'go',
  'rust',
]);

const COMMAND_LINE =
  /^\s*(\$ |> |#|\/\/|(sudo )?(pnpm|npm|npx|node|cd|git|curl|kvmgr|redis-server|export|docker|python3?|pip|make|tar|ls|cat|echo|nice|timeout|env|bash|sh|for|do|done|while|if|then|fi|wait|kill|sleep|grpcurl|envoy|kubectl|helm|vllm|uv|cmake|node-gyp|gcc|time|set|mkdir|rm|cp|mv)(?=\s|$)|[A-Z_][A-Z0-9_]*=\S*)/;

const UNIT = String.raw`(?:\s?(?:%|×|pt\b|ms\b|µs\b|us\b|ns\b|s\b|min\b|h\b|req\/s|tok\/s|tokens\/s|requests\/s|events\/s|ops\/s|[GMK]i?B\/s))`;
// A number not glued to an identifier on its left (letters, digits, `.`, `#`, `@`, `/`, `:`,
// `_`, `-` after a letter or digit, `×` for a rate multiplier), with an optional decimal part
// and unit.
const NUMBER = new RegExp(String.raw`(?<![\w.#@/:×$\\αβγδθλμστ])(?<![\w]-)(?<![\w]−)(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(${UNIT})?`, 'g');

function blank(s: string): string {
  return ' '.repeat(s.length);
}

/** Removes what is never a measurement from a prose line, keeping columns. */
function maskProse(line: string): string {
  let s = line;
  s = s.replace(/<!--.*?-->/g, blank);
  s = s.replace(/(`+)[^`]*?\1/g, blank);
  s = s.replace(/\]\([^)]*\)/g, blank);
  s = s.replace(/https?:\/\/\S+/g, blank);
  s = s.replace(/\d{4}-\d{2}-\d{2}(T[\d:.]+Z?)?/g, blank);
  for (const a of ALLOWED_PHRASES) s = s.replace(a.pattern, blank);
  return s;
}

function isMeasurement(whole: string, decimals: string | undefined, unit: string | undefined, after: string, before: string): boolean {
  // Versions and identifiers: `0.15.1`, `3.1-8B`, `2.5x`-style names continue with `.digit` or a letter.
  if (/^\.\d/.test(after) || /^[A-Za-z_]/.test(after)) return false;
  if (/^-[A-Za-z]/.test(after)) return false;
  // Thresholds and targets: `≥ 90%`, `≤ 5%`, `< 1%`, `up to 4,096`.
  if (/(≥|≤|<|>|<=|>=)\s?[+−-]?$/.test(before)) return false;
  const u = (unit ?? '').trim();
  if (decimals !== undefined) return true;
  if (u === '%' || u === 'pt') return true;
  if (u === '×' || u === '') return false;
  void whole;
  return true;
}

/**
 * Finds the numbers of a markdown document that look like measurements outside generated blocks.
 * @param text - the markdown
 * @param file - its path, echoed in the findings
 * @returns findings in document order (empty when the document is clean)
 */
export function findUngeneratedNumbers(text: string, file: string): NumberFinding[] {
  const out: NumberFinding[] = [];
  const lines = text.split('\n');
  let inGen = false;
  let fence: { marker: string; code: boolean } | undefined;
  let continued = false;
  let inComment = false;
  for (const [i, raw] of lines.entries()) {
    const line = raw.trimEnd();
    if (/^<!-- gen:[a-z0-9-]+ -->$/.test(line) || line.startsWith('<!-- BEGIN GENERATED')) {
      inGen = true;
      continue;
    }
    if (/^<!-- \/gen:[a-z0-9-]+ -->$/.test(line) || line.startsWith('<!-- END GENERATED')) {
      inGen = false;
      continue;
    }
    if (inGen) continue;
    const f = /^\s*(`{3,}|~{3,})\s*([^\s`]*)/.exec(line);
    if (f) {
      if (fence === undefined) {
        const lang = (f[2] ?? '').toLowerCase();
        fence = { marker: f[1] as string, code: CODE_LANGS.has(lang) };
        continued = false;
        continue;
      }
      if (line.trim().startsWith(fence.marker) && line.trim().replace(/[`~]/g, '') === '') {
        fence = undefined;
        continue;
      }
    }
    let scan = line;
    if (fence !== undefined) {
      if (fence.code) continue;
      const isCommand: boolean = continued || COMMAND_LINE.test(line);
      continued = isCommand && line.endsWith('\\');
      if (isCommand) continue;
    } else {
      // Multi-line HTML comments.
      if (inComment) {
        if (line.includes('-->')) inComment = false;
        continue;
      }
      if (line.includes('<!--') && !line.includes('-->')) {
        inComment = true;
        continue;
      }
      scan = maskProse(line);
    }
    for (const m of scan.matchAll(NUMBER)) {
      const at = m.index;
      const after = scan.slice(at + m[0].length);
      const before = scan.slice(Math.max(0, at - 4), at);
      if (isMeasurement(m[0], m[2], m[3], after, before)) {
        out.push({ file, line: i + 1, column: at + 1, text: m[0].trim(), context: line.trim() });
      }
    }
  }
  return out;
}
