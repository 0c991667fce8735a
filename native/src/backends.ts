/**
 * Which backends this process can use: the host addon, the vendor runtimes found at run time,
 * and the pure-TS fallback; and how `auto` picks one (cuda → rocm → ascend → host → ts-fallback).
 */
import { KvmgrError } from '@kvmgr/core';
import { loadAddon } from './addon.js';

/** A GPU/NPU runtime loaded at run time. */
export type DeviceBackendName = 'cuda' | 'rocm' | 'ascend';
/** Every backend an arena can live on. */
export type BackendName = 'host' | DeviceBackendName | 'ts-fallback';
/** A backend, or `auto` (first available of cuda, rocm, ascend, host, ts-fallback). */
export type BackendChoice = BackendName | 'auto';

/** One row of {@link listBackends}. */
export interface BackendStatus {
  readonly name: BackendName;
  /** The code for this backend is in this build (device backends: in the addon, loaded at run time). */
  readonly compiled: boolean;
  /** An arena can be created on it now. */
  readonly available: boolean;
  /** Why it is not available; `''` when it is. */
  readonly reason: string;
  /** Runtime library that was opened (device backends), else `''`. */
  readonly library: string;
  /** Devices the runtime reports (device backends), else 0. */
  readonly deviceCount: number;
}

/** Environment variable that overrides the runtime library of each device backend. */
export const LIBRARY_ENV: Readonly<Record<DeviceBackendName, string>> = Object.freeze({
  cuda: 'KVMGR_CUDA_LIBRARY',
  rocm: 'KVMGR_HIP_LIBRARY',
  ascend: 'KVMGR_ACL_LIBRARY',
});

const DEFAULT_LIBRARIES: Readonly<Record<DeviceBackendName, readonly string[]>> = {
  cuda: ['libcudart.so', 'libcudart.so.13', 'libcudart.so.12', 'libcudart.so.11.0', '/usr/local/cuda/lib64/libcudart.so'],
  rocm: ['libamdhip64.so', 'libamdhip64.so.6', 'libamdhip64.so.5', '/opt/rocm/lib/libamdhip64.so'],
  ascend: ['libascendcl.so', '/usr/local/Ascend/ascend-toolkit/latest/lib64/libascendcl.so'],
};

/**
 * The library paths tried for a device backend, in order: the env override alone when set
 * (`KVMGR_CUDA_LIBRARY`, `KVMGR_HIP_LIBRARY`, `KVMGR_ACL_LIBRARY`), else the usual sonames.
 *
 * @param kind - `cuda`, `rocm` or `ascend`.
 * @returns paths handed to `dlopen`, first that loads wins.
 */
export function libraryCandidates(kind: DeviceBackendName): string[] {
  const override = process.env[LIBRARY_ENV[kind]];
  return override ? [override] : [...DEFAULT_LIBRARIES[kind]];
}

const DEVICE_BACKENDS: readonly DeviceBackendName[] = ['cuda', 'rocm', 'ascend'];

type Probe = Pick<BackendStatus, 'available' | 'reason' | 'library' | 'deviceCount'>;
/** Probe results per backend and candidate list (the env override changes the key). */
const probes = new Map<string, Probe>();

function probeDevice(name: DeviceBackendName, fresh: boolean): BackendStatus {
  const { addon, reason } = loadAddon();
  if (!addon) return { name, compiled: false, available: false, reason: `native addon not loaded: ${reason}`, library: '', deviceCount: 0 };
  const candidates = libraryCandidates(name);
  const key = `${name}\0${candidates.join('\0')}`;
  let p = fresh ? undefined : probes.get(key);
  if (!p) {
    const r = addon.probe(name, candidates);
    p = { available: r.available, reason: r.reason, library: r.library, deviceCount: r.deviceCount };
    probes.set(key, p);
  }
  return { name, compiled: true, ...p };
}

function hostRow(): BackendStatus {
  const { addon, reason } = loadAddon();
  return addon
    ? { name: 'host', compiled: true, available: true, reason: '', library: '', deviceCount: 0 }
    : { name: 'host', compiled: false, available: false, reason: `native addon not loaded: ${reason}`, library: '', deviceCount: 0 };
}

const FALLBACK_ROW: BackendStatus = Object.freeze({ name: 'ts-fallback', compiled: true, available: true, reason: '', library: '', deviceCount: 0 });

/**
 * Reports every backend: `{ name, compiled, available, reason, library, deviceCount }`.
 * Device backends are probed now (dlopen + device count), so a runtime installed after start-up
 * is seen on the next call; {@link resolveBackend} reuses the latest probe.
 *
 * @returns rows for `cuda`, `rocm`, `ascend`, `host`, `ts-fallback`, in `auto`'s order.
 */
export function listBackends(): BackendStatus[] {
  return [...DEVICE_BACKENDS.map((n) => probeDevice(n, true)), hostRow(), { ...FALLBACK_ROW }];
}

function row(name: BackendName): BackendStatus {
  if (name === 'host') return hostRow();
  if (name === 'ts-fallback') return FALLBACK_ROW;
  return probeDevice(name, false);
}

const ORDER: readonly BackendName[] = ['cuda', 'rocm', 'ascend', 'host', 'ts-fallback'];

/**
 * Resolves a backend choice to a concrete backend. Device runtimes are probed once per library
 * candidate list (the env overrides are part of the key) and the result is reused.
 *
 * @param choice - a backend name or `auto`.
 * @returns the backend; `auto` gives the first available of cuda, rocm, ascend, host, ts-fallback.
 * @throws KvmgrError `KVMGR_UNAVAILABLE` when a named backend is not available here (the
 *   message carries the probe's reason); `KVMGR_INVALID_ARGUMENT` for an unknown name.
 */
export function resolveBackend(choice: BackendChoice): BackendName {
  if (choice === 'auto') {
    for (const name of ORDER) if (row(name).available) return name;
    return 'ts-fallback';
  }
  if (!ORDER.includes(choice)) {
    throw new KvmgrError('KVMGR_INVALID_ARGUMENT', `backend must be one of auto, ${ORDER.join(', ')}, got ${JSON.stringify(choice)}`, {
      details: { field: 'backend', value: choice },
    });
  }
  const r = row(choice);
  if (!r.available) {
    throw new KvmgrError('KVMGR_UNAVAILABLE', `backend ${choice} is not available: ${r.reason}`, { details: { backend: choice, reason: r.reason } });
  }
  return choice;
}
