/**
 * Pieces shared by the gateway's config sections: the one-line error of a section that fails its
 * zod schema, and the schema of an endpoint URL. (Kept out of `config.ts`, which imports the
 * sections' modules.)
 */
import { KvmgrError } from '@kvmgr/core';
import { z } from 'zod';

/** An http(s) URL string (`http://10.0.0.5:8000`); anything else fails with one message. */
export const urlString = z.string().refine((s) => {
  try {
    const u = new URL(s);
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}, 'expected an http(s) URL such as http://10.0.0.5:8000');

/**
 * `KVMGR_BAD_CONFIG` for the first issue of a failed parse of section `key`: the message starts
 * with the key path of the bad value (`tenants.weights.acme: Too small: …`, `ab.split: …`),
 * followed by unknown keys in parentheses when there are any; `details.key` holds the path.
 *
 * @param key - the section's key (`ab`, `tenants`, `embeddings`).
 * @param error - the zod error of `schema.safeParse(value)`.
 */
export function sectionError(key: string, error: z.ZodError): KvmgrError {
  const issue = error.issues[0];
  let k = key;
  for (const p of issue?.path ?? []) k += typeof p === 'number' ? `[${p}]` : `.${String(p)}`;
  const extra = issue !== undefined && 'keys' in issue ? ` (${(issue.keys as string[]).join(', ')})` : '';
  return new KvmgrError('KVMGR_BAD_CONFIG', `${k}: ${issue?.message ?? 'invalid'}${extra}`, { details: { key: k } });
}
