/** Whether the addon is loaded, for diagnostics (`kvmgr doctor`, tests). */
import { loadAddon } from './addon.js';

/** See {@link nativeAddonStatus}. */
export interface NativeAddonStatus {
  /** The compiled addon is loaded in this process. */
  readonly loaded: boolean;
  /** Why not; `''` when loaded. */
  readonly reason: string;
  /** Path the addon was (or would have been) loaded from. */
  readonly path: string;
  /** N-API version the addon was built for (0 when not loaded). */
  readonly napiVersion: number;
}

/**
 * Loads the addon if not yet done and reports the outcome. `KVMGR_NATIVE_ADDON` overrides the
 * path; `KVMGR_NATIVE_DISABLE=1` skips loading.
 * @returns `{ loaded, reason, path, napiVersion }`.
 */
export function nativeAddonStatus(): NativeAddonStatus {
  const s = loadAddon();
  return { loaded: s.addon !== undefined, reason: s.reason, path: s.path, napiVersion: s.addon?.napiVersion ?? 0 };
}
