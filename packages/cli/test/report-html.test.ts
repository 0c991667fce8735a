import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderReportHtml } from '../src/report-html.js';
import { measurePlots } from './screenshot.js';

describe('renderReportHtml', () => {
  it('draws every chart offline, and an empty chart is detected as blank', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvmgr-report-'));
    const cdf = (scale: number) => Array.from({ length: 50 }, (_, i) => [scale * (i + 1), (i + 1) / 50] as const);
    const html = renderReportHtml({
      title: 'test <report>',
      subtitle: ['workload: synthetic'],
      tables: [{ title: 'summary', header: ['metric', 'a', 'b'], rows: [['TTFT p99 (ms)', '120.0', '80.0']] }],
      charts: [
        { id: 'ttft-cdf', title: 'TTFT CDF', xLabel: 'ms', yLabel: 'fraction', step: true, series: [{ name: 'a', points: cdf(2) }, { name: 'b', points: cdf(1) }] },
        { id: 'empty', title: 'nothing', xLabel: 'x', yLabel: 'y', series: [] },
      ],
    });
    expect(html).toContain('test &lt;report&gt;');
    expect(html).not.toMatch(/<script[^>]+src=/); // self-contained: no external scripts
    const file = join(dir, 'report.html');
    writeFileSync(file, html);
    const plots = await measurePlots(file);
    const byId = Object.fromEntries(plots.map((p) => [p.id, p]));
    expect(byId['ttft-cdf']?.colours).toBeGreaterThanOrEqual(2);
    expect(byId['ttft-cdf']?.inkFraction).toBeGreaterThan(0.01);
    expect(byId.empty?.colours).toBe(0);
  });
});
