/**
 * The engine core is clock-free and does no I/O (CONVENTIONS "Servers and sockets"): its sources
 * name no clock, timer, file system or socket API.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const FORBIDDEN = ['Date.now', 'setTimeout', 'setInterval', 'performance.now', 'node:fs', 'node:net'];

describe('@kvmgr/engine sources', () => {
  it('read no clock, set no timer and do no I/O', () => {
    const dir = new URL('.', import.meta.url).pathname;
    const files = readdirSync(dir).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'));
    expect(files.length).toBeGreaterThan(3);
    const found: string[] = [];
    for (const f of files) {
      const text = readFileSync(join(dir, f), 'utf8');
      for (const word of FORBIDDEN) if (text.includes(word)) found.push(`${f}: ${word}`);
    }
    expect(found).toEqual([]);
  });
});
