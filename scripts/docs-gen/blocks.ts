/**
 * Generated blocks in markdown: `<!-- gen:NAME -->` … `<!-- /gen:NAME -->`, each on its own
 * line. Everything between the two markers belongs to `scripts/docs-gen.ts`; text outside is
 * written by hand and kept as it is.
 */

/** One generated block found in a document. */
export interface GenBlock {
  /** Block name, `[a-z0-9-]+`. */
  readonly name: string;
  /** 1-based line of the opening marker. */
  readonly line: number;
  /** Text between the marker lines, without the markers' own newlines. */
  readonly body: string;
}

const OPEN = /^<!-- gen:([a-z0-9-]+) -->$/;
const CLOSE = /^<!-- \/gen:([a-z0-9-]+) -->$/;

/** Opening marker of block `name`. */
export function openMarker(name: string): string {
  return `<!-- gen:${name} -->`;
}

/** Closing marker of block `name`. */
export function closeMarker(name: string): string {
  return `<!-- /gen:${name} -->`;
}

/**
 * Finds every generated block of a document.
 * @param text - the markdown
 * @param file - its path, only for error messages
 * @returns the blocks in document order
 * @throws Error naming file and line when a marker is unclosed, closes another block's name,
 *   closes nothing, or a block is nested in another
 */
export function findBlocks(text: string, file: string): GenBlock[] {
  const lines = text.split('\n');
  const out: GenBlock[] = [];
  let open: { name: string; line: number } | undefined;
  let body: string[] = [];
  for (const [i, raw] of lines.entries()) {
    const l = raw.trimEnd();
    const o = OPEN.exec(l);
    const c = CLOSE.exec(l);
    if (o) {
      if (open) throw new Error(`${file}:${i + 1}: gen block '${o[1]}' opens inside '${open.name}' (opened at line ${open.line}); expected ${closeMarker(open.name)} first`);
      open = { name: o[1] as string, line: i + 1 };
      body = [];
    } else if (c) {
      if (!open) throw new Error(`${file}:${i + 1}: ${closeMarker(c[1] as string)} closes no open gen block`);
      if (open.name !== c[1]) throw new Error(`${file}:${i + 1}: ${closeMarker(c[1] as string)} closes '${open.name}' (opened at line ${open.line}); expected ${closeMarker(open.name)}`);
      out.push({ name: open.name, line: open.line, body: body.join('\n') });
      open = undefined;
    } else if (open) {
      body.push(raw);
    }
  }
  if (open) throw new Error(`${file}:${open.line}: gen block '${open.name}' is never closed; expected ${closeMarker(open.name)}`);
  return out;
}

/**
 * Replaces the body of every block of the document that `render` knows.
 * @param text - the markdown
 * @param file - its path, only for error messages
 * @param render - (block name, current body) → new body (markdown without the markers), or
 *   undefined to keep it
 * @returns the new text and the names of the blocks replaced
 * @throws Error from {@link findBlocks} on malformed markers
 */
export function replaceBlocks(text: string, file: string, render: (name: string, body: string) => string | undefined): { text: string; replaced: string[] } {
  const bodies = findBlocks(text, file).map((b) => b.body);
  const lines = text.split('\n');
  const out: string[] = [];
  const replaced: string[] = [];
  let skipping = false;
  let index = 0;
  for (const raw of lines) {
    const l = raw.trimEnd();
    const o = OPEN.exec(l);
    if (o && !skipping) {
      out.push(raw);
      const body = render(o[1] as string, bodies[index++] ?? '');
      if (body !== undefined) {
        out.push(...body.replace(/\n+$/, '').split('\n'));
        replaced.push(o[1] as string);
        skipping = true;
      }
      continue;
    }
    if (skipping) {
      if (CLOSE.test(l)) {
        out.push(raw);
        skipping = false;
      }
      continue;
    }
    out.push(raw);
  }
  return { text: out.join('\n'), replaced };
}
