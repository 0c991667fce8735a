import { describe, expect, it } from 'vitest';
import { type ConfigIssue, type ConfigSchema, isKvmgrError, parseConfigText, parseYamlText, validateConfig } from './index.js';

/** A hand-written schema with zod's `safeParse` shape: `{ rate: number > 0, tags?: string[] }`, no other keys. */
const schema: ConfigSchema<{ rate: number; tags: string[] }> = {
  safeParse(input) {
    const issues: ConfigIssue[] = [];
    if (typeof input !== 'object' || input === null || Array.isArray(input)) return { success: false, error: { issues: [{ path: [], message: 'expected a mapping' }] } };
    const o = input as Record<string, unknown>;
    const extra = Object.keys(o).filter((k) => k !== 'rate' && k !== 'tags');
    if (extra.length > 0) issues.push({ path: [], message: 'unrecognized keys', keys: extra });
    if (typeof o.rate !== 'number' || !(o.rate > 0)) issues.push({ path: ['rate'], message: 'expected a number > 0' });
    const tags = o.tags ?? [];
    if (!Array.isArray(tags)) issues.push({ path: ['tags'], message: 'expected a list' });
    else {
      for (const [i, t] of tags.entries()) if (typeof t !== 'string') issues.push({ path: ['tags', i], message: 'expected a string' });
    }
    return issues.length > 0 ? { success: false, error: { issues } } : { success: true, data: { rate: o.rate as number, tags: tags as string[] } };
  },
};

function failure(fn: () => unknown): { message: string; details: Record<string, unknown> } {
  try {
    fn();
  } catch (e) {
    expect(isKvmgrError(e, 'KVMGR_BAD_CONFIG')).toBe(true);
    return e as { message: string; details: Record<string, unknown> };
  }
  throw new Error('expected KVMGR_BAD_CONFIG');
}

describe('parseYamlText', () => {
  it('parses YAML and JSON; an empty document is null', () => {
    expect(parseYamlText('rate: 2\ntags: [a, b]\n', 'x')).toEqual({ rate: 2, tags: ['a', 'b'] });
    expect(parseYamlText('{"rate": 2}', 'x')).toEqual({ rate: 2 });
    expect(parseYamlText('', 'x')).toBeNull();
  });

  it('turns syntax errors, warnings (unresolved tags), duplicate keys and alias bombs into one line naming the source', () => {
    expect(failure(() => parseYamlText('a: [\n', 'f.yaml')).message).toMatch(/^f\.yaml: not valid YAML \([^\n]+\)$/);
    expect(failure(() => parseYamlText('a: !custom 1\n', 'f.yaml')).message).toMatch(/^f\.yaml: not valid YAML \(.*!custom/);
    expect(failure(() => parseYamlText('a: 1\na: 2\n', 'f.yaml')).message).toMatch(/^f\.yaml: not valid YAML \(.*unique/i);
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x, x]', ...Array.from({ length: 6 }, (_, i) => `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(10).fill(`*${String.fromCharCode(97 + i)}`).join(', ')}]`)].join('\n');
    expect(failure(() => parseYamlText(bomb, 'bomb.yaml')).message).toMatch(/^bomb\.yaml: not valid YAML/);
  });
});

describe('validateConfig / parseConfigText', () => {
  it('returns the schema output', () => {
    expect(parseConfigText('rate: 1.5\n', schema, 'c.yaml')).toEqual({ rate: 1.5, tags: [] });
    expect(validateConfig({ rate: 3, tags: ['x'] }, schema, 'obj')).toEqual({ rate: 3, tags: ['x'] });
  });

  it('names the first bad key path, unknown keys by name, and keeps every issue in details', () => {
    const e = failure(() => parseConfigText('rate: 1\ntags: [a, 3]\n', schema, 'c.yaml'));
    expect(e.message).toBe('c.yaml: tags.1: expected a string');
    expect(e.details.key).toBe('tags.1');
    expect(failure(() => parseConfigText('rate: 1\nbogus: 2\nother: 3\n', schema, 'c.yaml')).message).toBe('c.yaml: bogus, other: unrecognized keys');
    const two = failure(() => parseConfigText('rate: -1\ntags: 7\n', schema, 'c.yaml'));
    expect(two.message).toBe('c.yaml: rate: expected a number > 0');
    expect((two.details.issues as ConfigIssue[]).map((i) => i.path.join('.'))).toEqual(['rate', 'tags']);
    expect(failure(() => parseConfigText('- 1\n', schema, 'c.yaml')).message).toBe('c.yaml: (root): expected a mapping');
  });
});
