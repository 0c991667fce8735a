/**
 * What admission predicts from the requests the gateway itself has served: how long a request
 * takes from placement to its first byte (TTFT once placed), and how fast the fleet frees KV.
 *
 * - TTFT once placed: a smoothed mean and mean deviation updated per sample with gains 1/8 and
 *   1/4, predicted as mean + 2 × deviation — the retransmission-timeout estimator of RFC 6298
 *   §2 (Jacobson/Karels) with K = 2 instead of 4, used here for the same reason: a bound that
 *   tracks both the level and the jitter of a latency without keeping samples.
 * - KV drain rate: by Little's law (L = λW), the fleet finishes `inFlightTokens / serviceMs`
 *   reserved KV tokens per ms, where `serviceMs` is the smoothed placement → last byte time
 *   (gain 1/8). Unlike a decayed count of completions it does not fall to zero when the fleet
 *   idles, so the first request deferred after a lull is not refused for a stale rate.
 *
 * Nothing is predicted before the first sample: admission then only enforces deadlines.
 *
 * @see RFC 6298 §2 (https://www.rfc-editor.org/rfc/rfc6298#section-2)
 * @see J. D. C. Little, "A Proof for the Queuing Formula L = λW", Operations Research 9(3), 1961.
 */

/** Gain of the smoothed mean (RFC 6298 α). */
const ALPHA = 1 / 8;
/** Gain of the smoothed deviation (RFC 6298 β). */
const BETA = 1 / 4;
/**
 * Deviations added to the mean for a bound. RFC 6298 takes 4 for a retransmission timer, where a
 * bound too low costs a spurious retransmission; here a bound too high refuses requests that
 * would have met their SLO and one too low admits a few that miss it by little, so 2.
 */
const K = 2;

/** Online latency and drain-rate estimates of one gateway (all endpoints together). */
export class ServiceModel {
  private ttftMean = Number.NaN;
  private ttftDev = 0;
  private serviceMean = Number.NaN;

  /** Samples of TTFT once placed so far. */
  ttftSamples = 0;

  /**
   * Records the time from placing a request on an endpoint to its first response byte.
   *
   * @param ms - milliseconds, ≥ 0 (negative or non-finite samples are ignored).
   */
  observeTtft(ms: number): void {
    if (!(ms >= 0 && Number.isFinite(ms))) return;
    this.ttftSamples++;
    if (Number.isNaN(this.ttftMean)) {
      this.ttftMean = ms;
      this.ttftDev = ms / 2;
      return;
    }
    this.ttftDev = (1 - BETA) * this.ttftDev + BETA * Math.abs(this.ttftMean - ms);
    this.ttftMean = (1 - ALPHA) * this.ttftMean + ALPHA * ms;
  }

  /**
   * Records the time from placing a request to its last byte (it held its KV that long).
   *
   * @param ms - milliseconds, ≥ 0 (negative or non-finite samples are ignored).
   */
  observeService(ms: number): void {
    if (!(ms >= 0 && Number.isFinite(ms))) return;
    this.serviceMean = Number.isNaN(this.serviceMean) ? ms : (1 - ALPHA) * this.serviceMean + ALPHA * ms;
  }

  /** Predicted TTFT once placed, ms (mean + 2 deviations); 0 before the first sample. */
  ttftBoundMs(): number {
    return Number.isNaN(this.ttftMean) ? 0 : this.ttftMean + K * this.ttftDev;
  }

  /** Smoothed placement → last byte time, ms; undefined before the first sample. */
  serviceMs(): number | undefined {
    return Number.isNaN(this.serviceMean) ? undefined : this.serviceMean;
  }

  /**
   * Predicted time until `tokens` KV tokens have been freed, ms: `tokens` over the drain rate
   * `inFlightTokens / serviceMs` (Little's law).
   *
   * @param tokens - KV tokens that must free up (those of the requests ahead plus this one's).
   * @param inFlightTokens - KV tokens reserved by requests in flight now.
   * @returns ms; undefined when nothing is known (no service sample yet, or nothing in flight).
   */
  drainMs(tokens: number, inFlightTokens: number): number | undefined {
    const s = this.serviceMs();
    if (s === undefined || !(inFlightTokens > 0)) return undefined;
    return (Math.max(0, tokens) * s) / inFlightTokens;
  }
}
