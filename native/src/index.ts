/**
 * @kvmgr/native — device block arenas: one slab of `numBlocks × bytesPerBlock` bytes on the host
 * (always), or on CUDA / ROCm / Ascend devices whose runtime is opened at run time; batched,
 * asynchronous block copies; zero-copy host views; a pure-TS fallback when the addon is missing.
 */
export { createArena } from './create-arena.js';
export type { ArenaOptions } from './create-arena.js';
export type { ArenaLocation, DeviceArena } from './device-arena.js';
export { NativeDeviceArena } from './native-arena.js';
export { TsFallbackArena } from './ts-fallback-arena.js';
export { listBackends, resolveBackend, libraryCandidates, LIBRARY_ENV } from './backends.js';
export type { BackendChoice, BackendName, BackendStatus, DeviceBackendName } from './backends.js';
export { ArenaBlockBackend } from './block-backend.js';
export type { ArenaBackendStats, ArenaBlockBackendOptions } from './block-backend.js';
export { nativeAddonStatus } from './status.js';
export type { NativeAddonStatus } from './status.js';
