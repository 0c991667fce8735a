/**
 * Boundary checks for {@link LifetimeFeatures} and observed lengths, and the key a per-key
 * predictor groups requests by.
 */
import type { LifetimeFeatures } from '@kvmgr/core';
import { invalidArgument } from '@kvmgr/core';

function checkCount(field: string, value: unknown): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw invalidArgument(field, value, 'a finite number >= 0');
  }
}

/**
 * Validates request features at the predictor boundary.
 *
 * @param features - what the server knows at arrival; lengths in tokens, `arrivalMs` in ms.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when a length is negative, NaN or infinite, or an id
 *   has the wrong type (`prefixId`: finite number or string; `tenant`, `sessionId`, `model`:
 *   string).
 */
export function validateFeatures(features: LifetimeFeatures): void {
  if (typeof features !== 'object' || features === null) {
    throw invalidArgument('features', features, 'an object');
  }
  checkCount('features.promptTokens', features.promptTokens);
  if (features.maxTokens !== undefined) checkCount('features.maxTokens', features.maxTokens);
  if (features.arrivalMs !== undefined) checkCount('features.arrivalMs', features.arrivalMs);
  const p = features.prefixId;
  if (p !== undefined && typeof p !== 'string' && !(typeof p === 'number' && Number.isFinite(p))) {
    throw invalidArgument('features.prefixId', p, 'a finite number or a string');
  }
  for (const k of ['tenant', 'sessionId', 'model'] as const) {
    const v = features[k];
    if (v !== undefined && typeof v !== 'string') throw invalidArgument(`features.${k}`, v, 'a string');
  }
  const h = features.sessionHistory;
  if (h !== undefined) {
    if (!Array.isArray(h)) throw invalidArgument('features.sessionHistory', h, 'an array of token counts');
    for (let i = 0; i < h.length; i++) checkCount(`features.sessionHistory[${i}]`, h[i]);
  }
}

/**
 * Validates an observed output length (tokens).
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when negative, NaN or infinite.
 */
export function validateActual(field: string, value: number): void {
  checkCount(field, value);
}

/**
 * The most specific grouping key a per-key predictor uses: session, then prefix/template, then
 * tenant, each namespaced so that equal strings of different kinds never collide.
 *
 * @param features - validated features.
 * @param by - which fields to consider, most specific first.
 * @returns the keys present, most specific first (may be empty).
 */
export function groupKeys(
  features: LifetimeFeatures,
  by: readonly ('session' | 'prefix' | 'tenant' | 'model')[],
): string[] {
  const keys: string[] = [];
  for (const b of by) {
    if (b === 'session' && features.sessionId !== undefined) keys.push(`s:${features.sessionId}`);
    else if (b === 'prefix' && features.prefixId !== undefined) keys.push(`p:${features.prefixId}`);
    else if (b === 'tenant' && features.tenant !== undefined) keys.push(`t:${features.tenant}`);
    else if (b === 'model' && features.model !== undefined) keys.push(`m:${features.model}`);
  }
  return keys;
}
