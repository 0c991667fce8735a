/**
 * Test helper: opens an HTML file in Debian's headless Chromium through playwright-core, takes
 * a screenshot of every chart area, and measures how much of it is drawn (share of pixels that
 * differ from the background), computed in the page from the PNG screenshot itself.
 */
import { existsSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

/** Path of Debian's Chromium (installed by `.ci/install-debian`). */
export const CHROMIUM = process.env.KVMGR_CHROMIUM ?? '/usr/bin/chromium';

/** Per chart: its id and the fraction of non-background pixels in its screenshot. */
export interface PlotCoverage {
  readonly id: string;
  readonly inkFraction: number;
  /** Distinct colours seen (lines in several colours > axes alone). */
  readonly colours: number;
}

/**
 * Renders `htmlPath` and measures each `.plot` element.
 * @param pagePng - when set, also writes a full-page screenshot there.
 */
export async function measurePlots(htmlPath: string, pagePng?: string): Promise<PlotCoverage[]> {
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium not found at ${CHROMIUM}; run .ci/install-debian`);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(pathToFileURL(htmlPath).href);
    await page.waitForSelector('body[data-rendered]', { timeout: 20_000 });
    if (pagePng) await page.screenshot({ path: pagePng, fullPage: true });
    const ids = await page.$$eval('.plot', (els) => els.map((e) => e.id));
    const out: PlotCoverage[] = [];
    for (const id of ids) {
      const png = await page.locator(`#${id}`).screenshot();
      const stats = await page.evaluate(async (b64: string) => {
        const img = new Image();
        img.src = `data:image/png;base64,${b64}`;
        await img.decode();
        const c = document.createElement('canvas');
        c.width = img.width;
        c.height = img.height;
        const ctx = c.getContext('2d');
        if (!ctx) return { ink: 0, colours: 0 };
        ctx.drawImage(img, 0, 0);
        const d = ctx.getImageData(0, 0, c.width, c.height).data;
        let ink = 0;
        const seen = new Set<number>();
        for (let i = 0; i < d.length; i += 4) {
          const r = d[i] as number;
          const g = d[i + 1] as number;
          const b = d[i + 2] as number;
          if (r < 245 || g < 245 || b < 245) {
            ink++;
            // saturated pixels are series lines; grey ones are axes and labels
            if (Math.max(r, g, b) - Math.min(r, g, b) > 60) seen.add(((r >> 4) << 8) | ((g >> 4) << 4) | (b >> 4));
          }
        }
        return { ink: ink / (d.length / 4), colours: seen.size };
      }, png.toString('base64'));
      out.push({ id, inkFraction: stats.ink, colours: stats.colours });
    }
    return out;
  } finally {
    await browser.close();
  }
}
