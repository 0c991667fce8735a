/**
 * Loads the compiled addon (`build/Release/kvmgr_native.node`) once. When it is missing or fails
 * to load, every caller gets `undefined` and one line goes to stderr; kvmgr then uses the pure-TS
 * fallback backend.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** Options of the native `Arena` constructor (validated again in C++). */
export interface NativeArenaOptions {
  backend: 'host' | 'cuda' | 'rocm' | 'ascend';
  numBlocks: number;
  bytesPerBlock: number;
  location: 'host' | 'device';
  device: number;
  hugePages: boolean;
  lock: boolean;
  libraries: string[];
}

/** What `Arena.info()` reports. */
export interface NativeArenaInfo {
  backend: string;
  location: 'host' | 'device';
  device: number;
  numBlocks: number;
  bytesPerBlock: number;
  hugePages: boolean;
  locked: boolean;
  library: string;
}

/** The C++ `Arena` class (cc/arena.cc). Throws `Error`s carrying a `code` string. */
export interface NativeArena {
  info(): NativeArenaInfo;
  buffer(): ArrayBuffer;
  write(blockId: number, data: Uint8Array, byteOffset: number): void;
  read(blockId: number, into: Uint8Array, byteOffset: number): void;
  copyTo(target: NativeArena, src: Uint32Array, dst: Uint32Array): Promise<void>;
  copyToSync(target: NativeArena, src: Uint32Array, dst: Uint32Array): void;
  close(): void;
  readonly closed: boolean;
}

/** The addon's exports. */
export interface NativeAddon {
  Arena: new (options: NativeArenaOptions) => NativeArena;
  probe(kind: string, libraries: string[]): { available: boolean; reason: string; library: string; deviceCount: number };
  napiVersion: number;
  platform: string;
}

interface LoadState {
  addon: NativeAddon | undefined;
  /** Why the addon is not loaded; empty when it is. */
  reason: string;
  path: string;
}

let state: LoadState | undefined;

/** Default location of the addon, relative to this module (src/ and dist/ both sit one level down). */
function defaultAddonPath(): string {
  return fileURLToPath(new URL('../build/Release/kvmgr_native.node', import.meta.url));
}

/**
 * Loads the addon on first call. `KVMGR_NATIVE_ADDON` overrides the path; `KVMGR_NATIVE_DISABLE=1`
 * skips loading (as on a machine where the build failed).
 */
export function loadAddon(): LoadState {
  if (state) return state;
  const path = process.env.KVMGR_NATIVE_ADDON || defaultAddonPath();
  if (process.env.KVMGR_NATIVE_DISABLE === '1') {
    state = { addon: undefined, reason: 'disabled by KVMGR_NATIVE_DISABLE=1', path };
  } else {
    try {
      const addon = createRequire(import.meta.url)(path) as NativeAddon;
      state = { addon, reason: '', path };
    } catch (e) {
      const msg = e instanceof Error ? e.message.split('\n')[0] : String(e);
      state = { addon: undefined, reason: `cannot load ${path}: ${msg}`, path };
    }
  }
  return state;
}

let noticed = false;

/** Prints the one-line fallback notice (once per process). */
export function noticeFallback(reason: string): void {
  if (noticed || process.env.KVMGR_NATIVE_QUIET === '1') return;
  noticed = true;
  process.stderr.write(`@kvmgr/native: native addon unavailable (${reason}); using the pure-TS fallback backend\n`);
}
