/**
 * The health state of one upstream, shared by the LLM endpoints (`endpoint.ts`: the metrics
 * scrape is the probe) and the embedding endpoints (`embedding-endpoints.ts`: `GET /health` is
 * the probe).
 *
 * Passive and active: a proxied request that fails to connect takes the upstream out at once
 * ({@link HealthState.markFailed}); a probe refused at the TCP level does too; `unhealthyThreshold`
 * failed probes in a row (timeouts, bad answers) also do. A probe that *started after* the last
 * failure and succeeded brings it back, so a probe already in flight when the upstream died
 * cannot revive it.
 */

/** Called when an upstream goes in (`healthy`) or out of service, with why. */
export type HealthChange = (healthy: boolean, why: string) => void;

/** In or out of service, from probes and proxied requests. Starts out of service until a probe succeeds. */
export class HealthState {
  private healthyNow = false;
  private failures = 0;
  private lastFailureAtMs = 0;

  /**
   * @param unhealthyThreshold - failed probes in a row that take the upstream out (a refused one does at once).
   * @param onChange - called on every change.
   */
  constructor(
    private readonly unhealthyThreshold: number,
    private readonly onChange?: HealthChange,
  ) {}

  /** True while the upstream takes traffic. */
  get healthy(): boolean {
    return this.healthyNow;
  }

  /** Takes the upstream out now (a proxied request failed to connect, or broke). */
  markFailed(why: string): void {
    this.lastFailureAtMs = Date.now();
    this.failures = Math.max(this.failures + 1, this.unhealthyThreshold);
    this.set(false, why);
  }

  /**
   * A probe succeeded: back in service unless something failed after it started.
   *
   * @param startedAtMs - when the probe was sent, ms since the epoch.
   */
  probeOk(startedAtMs: number, why = 'probe ok'): void {
    this.failures = 0;
    if (startedAtMs > this.lastFailureAtMs) this.set(true, why);
  }

  /**
   * A probe failed: out at once when it was refused (nothing listens there any more) or the
   * upstream was out already, else after `unhealthyThreshold` failures in a row.
   *
   * @param startedAtMs - when the probe was sent, ms since the epoch.
   * @param refused - the connection was refused or reset.
   */
  probeFailed(startedAtMs: number, refused: boolean, why: string): void {
    this.failures++;
    this.lastFailureAtMs = Math.max(this.lastFailureAtMs, startedAtMs);
    if (refused || this.failures >= this.unhealthyThreshold || !this.healthyNow) this.set(false, why);
  }

  private set(h: boolean, why: string): void {
    if (h === this.healthyNow) return;
    this.healthyNow = h;
    this.onChange?.(h, why);
  }
}
