/**
 * A progress bar on stderr for long runs (cli-progress), silent when stderr is not a TTY
 * unless forced, so logs and pipes stay clean.
 */
import cliProgress from 'cli-progress';

/** What a long-running command reports progress to. */
export interface Progress {
  /** Starts a bar for one phase (`label`) with `total` units, named `unit` (default `requests`). */
  start(label: string, total: number, unit?: string): void;
  /** Sets the completed units of the current phase. */
  update(done: number): void;
  stop(): void;
}

/**
 * Creates a progress reporter.
 * @param enabled - draw the bar. @default process.stderr.isTTY
 */
export function createProgress(enabled: boolean = process.stderr.isTTY === true): Progress {
  if (!enabled) {
    return { start() {}, update() {}, stop() {} };
  }
  let bar: cliProgress.SingleBar | undefined;
  return {
    start(label, total, unit = 'requests') {
      bar?.stop();
      bar = new cliProgress.SingleBar(
        { format: `${label.padEnd(16)} {bar} {percentage}% | {value}/{total} ${unit} | ETA {eta}s`, stream: process.stderr, hideCursor: true, clearOnComplete: false },
        cliProgress.Presets.shades_classic,
      );
      bar.start(total, 0);
    },
    update(done) {
      bar?.update(done);
    },
    stop() {
      bar?.stop();
      bar = undefined;
    },
  };
}
