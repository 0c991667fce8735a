/** Unit constants and conversions. Simulator time is in microseconds (µs). */

/** Bytes in a KiB. */
export const KiB = 1024;
/** Bytes in a MiB. */
export const MiB = 1024 * 1024;
/** Bytes in a GiB. */
export const GiB = 1024 * 1024 * 1024;

/** Microseconds per millisecond. */
export const US_PER_MS = 1000;
/** Microseconds per second. */
export const US_PER_S = 1_000_000;

/** Milliseconds → microseconds. */
export function msToUs(ms: number): number {
  return ms * US_PER_MS;
}

/** Microseconds → milliseconds. */
export function usToMs(us: number): number {
  return us / US_PER_MS;
}

/**
 * Transfer time in µs of `bytes` over a link: base latency + bytes / bandwidth.
 * @param bytes - bytes moved.
 * @param bandwidthBytesPerSec - link bandwidth, bytes per second (> 0).
 * @param baseLatencyUs - fixed cost per transfer in µs. @default 0
 * @see BLIS (inference-sim) `--kv-offload-threshold` transfer model
 */
export function transferTimeUs(bytes: number, bandwidthBytesPerSec: number, baseLatencyUs = 0): number {
  return baseLatencyUs + (bytes / bandwidthBytesPerSec) * US_PER_S;
}
