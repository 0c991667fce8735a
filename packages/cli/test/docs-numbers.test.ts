/**
 * The docs' number lint and generated-block markers (scripts/docs-gen, run by `pnpm docs:check`):
 * unit cases of what counts as a measurement, and the repository's docs themselves.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { findBlocks, replaceBlocks } from '../../../scripts/docs-gen/blocks.js';
import { mdTableText, parseBenchTable, parseMdTable } from '../../../scripts/docs-gen/format.js';
import { findUngeneratedNumbers } from '../../../scripts/docs-gen/lint.js';
import { GROUPS, SECTIONS } from '../../../scripts/docs-gen/sections.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));

function texts(md: string): string[] {
  return findUngeneratedNumbers(md, 'x.md').map((f) => f.text);
}

describe('number lint', () => {
  it('flags decimals, percentages, points, decimal ratios and timed integers in prose', () => {
    expect(texts('goodput 2.297 → 2.633 req/s (+14.6%), hit rate +2.6 pt, 1.43× the peak, took 7842 ms and 27 s')).toEqual([
      '2.297',
      '2.633 req/s',
      '14.6%',
      '2.6 pt',
      '1.43×',
      '7842 ms',
      '27 s',
    ]);
  });

  it('flags signed changes written with a minus sign or a hyphen', () => {
    expect(texts('TTFT p99 −26.5% and -19.4%')).toEqual(['26.5%', '19.4%']);
  });

  it('passes versions, identifiers, dates, issues, thresholds, rate multipliers, integer ratios and plain counts', () => {
    expect(texts('vLLM 0.15.1 on Llama-3.1-8B and Qwen2.5-7B (H100, fp8), 2026-12-06, issue #18')).toEqual([]);
    expect(texts('the knee is the highest rate with ≥ 90% SLO attainment; under < 1% of SLOs')).toEqual([]);
    expect(texts('at ×1.5 and ×0.75, the seed asks for 2× vLLM, 3,000 requests on 4 × instances, 12k tokens')).toEqual([]);
  });

  it('passes inline code, link targets and HTML comments', () => {
    expect(texts('run `--rate-scale 2.5` or `chunked-prefill{budget=0.5}`, see [this](a/1.5.md) <!-- 3.5% -->')).toEqual([]);
  });

  it('passes code in a language and command lines, but flags command output', () => {
    const md = ['```ts', 'const x = 0.85;', '```', '```', '$ pnpm kvmgr replay --rate-scale 1.5', 'goodput (req/s)   2.297   2.633', '```', '```sh', 'pnpm kvmgr sweep --rates 0.5,1 \\', '  --workers 2', '```'].join('\n');
    const found = findUngeneratedNumbers(md, 'x.md');
    expect(found.map((f) => [f.line, f.text])).toEqual([
      [6, '2.297'],
      [6, '2.633'],
    ]);
  });

  it('passes everything inside generated blocks, and lints again after the closing marker', () => {
    const md = ['<!-- gen:replay-headline -->', 'goodput +14.6% (2.297 → 2.633 req/s)', '```', 'TTFT p99 7842.2', '```', '<!-- /gen:replay-headline -->', 'and 3.5%'].join('\n');
    expect(findUngeneratedNumbers(md, 'x.md').map((f) => [f.line, f.text])).toEqual([[7, '3.5%']]);
  });
});

describe('generated blocks', () => {
  it('replaces only the bodies of blocks the renderer knows', () => {
    const md = ['a', '<!-- gen:one -->', 'old', '<!-- /gen:one -->', 'b', '<!-- gen:two -->', 'kept', '<!-- /gen:two -->'].join('\n');
    const r = replaceBlocks(md, 'x.md', (n) => (n === 'one' ? 'new 1\nnew 2\n' : undefined));
    expect(r.replaced).toEqual(['one']);
    expect(r.text).toBe(['a', '<!-- gen:one -->', 'new 1', 'new 2', '<!-- /gen:one -->', 'b', '<!-- gen:two -->', 'kept', '<!-- /gen:two -->'].join('\n'));
    expect(findBlocks(r.text, 'x.md').map((b) => [b.name, b.line, b.body])).toEqual([
      ['one', 2, 'new 1\nnew 2'],
      ['two', 7, 'kept'],
    ]);
  });

  it('rejects unclosed, mismatched and nested markers with file and line', () => {
    expect(() => findBlocks('<!-- gen:a -->\nx', 'd.md')).toThrow("d.md:1: gen block 'a' is never closed");
    expect(() => findBlocks('<!-- gen:a -->\n<!-- /gen:b -->', 'd.md')).toThrow('d.md:2: <!-- /gen:b --> closes');
    expect(() => findBlocks('<!-- gen:a -->\n<!-- gen:b -->', 'd.md')).toThrow("d.md:2: gen block 'b' opens inside 'a'");
    expect(() => findBlocks('<!-- /gen:a -->', 'd.md')).toThrow('closes no open gen block');
  });
});

describe('reading script output', () => {
  const out = ['12031 requests; hit ratio', '', '| capacity | lru | share |', '|---:|---:|---|', '| 1000 | 0.044 | 0.085 (45%) |', '| 3000 | 0.065 |', '', '(44.8 s)'].join('\n');

  it('parses the first markdown table by header, skipping the separator and padding short rows', () => {
    expect(parseMdTable(out)).toEqual([
      { capacity: '1000', lru: '0.044', share: '0.085 (45%)' },
      { capacity: '3000', lru: '0.065', share: '' },
    ]);
    expect(mdTableText(out).split('\n')).toHaveLength(4);
    expect(parseMdTable('no table here')).toEqual([]);
  });

  it("parses bench/run.ts's table: times, '-' as missing, the ratio to the baseline", () => {
    const bench = [
      '',
      '@kvmgr/eviction',
      'suite     case                                     ops/s  mean µs  ±%   p50 µs  p99 µs  vs baseline',
      '--------  ---------------------------------------  -----  -------  ---  ------  ------  -----------',
      'eviction  lru-cache 100k mix ×1000 (peer)          9000   111      1.2  -       -       ',
      'eviction  slo-aware selectVictims 4096 candidates  80000  12.5     0.8  11.8    21.9    2.63× vllm selectVictims 4096 candidates',
      '  notes (eviction): {}',
    ].join('\n');
    expect(parseBenchTable(bench)).toEqual([
      { suite: 'eviction', name: 'lru-cache 100k mix ×1000 (peer)', meanUs: 111, p50Us: undefined, p99Us: undefined, speedup: undefined },
      { suite: 'eviction', name: 'slo-aware selectVictims 4096 candidates', meanUs: 12.5, p50Us: 11.8, p99Us: 21.9, speedup: 2.63 },
    ]);
  });
});

function markdownFiles(): string[] {
  const out = ['README.md'];
  const walk = (dir: string): void => {
    for (const e of readdirSync(join(root, dir))) {
      const p = join(dir, e);
      if (statSync(join(root, p)).isDirectory()) walk(p);
      else if (e.endsWith('.md')) out.push(p);
    }
  };
  walk('docs');
  for (const d of readdirSync(join(root, 'packages'))) {
    try {
      statSync(join(root, 'packages', d, 'README.md'));
      out.push(join('packages', d, 'README.md'));
    } catch {
      // no README
    }
  }
  try {
    statSync(join(root, 'native', 'README.md'));
    out.push(join('native', 'README.md'));
  } catch {
    // no native package
  }
  return out;
}

describe("the repository's docs", () => {
  const files = markdownFiles().map((f) => relative(root, join(root, f)));

  it('hold no measurement outside a generated block', () => {
    const found = files.flatMap((f) => findUngeneratedNumbers(readFileSync(join(root, f), 'utf8'), f));
    expect(found.map((x) => `${x.file}:${x.line}: ${x.text}`)).toEqual([]);
  });

  it('groups name only sections that exist', () => {
    const names = new Set(SECTIONS.map((s) => s.name));
    expect(Object.values(GROUPS).flat().filter((n) => !names.has(n))).toEqual([]);
  });

  it('name only blocks that a section renders, and every block appears somewhere', () => {
    const known = new Set(SECTIONS.flatMap((s) => Object.keys(s.blocks)));
    const used = new Set(files.flatMap((f) => findBlocks(readFileSync(join(root, f), 'utf8'), f).map((b) => b.name)));
    expect([...used].filter((b) => !known.has(b))).toEqual([]);
    expect([...known].filter((b) => !used.has(b))).toEqual([]);
  });
});
