/**
 * CPU time of the processes of a live stack, so `kvmgr live` can show when the machine, not the
 * routing, limits a run: each engine process from `/proc/PID/stat` (Linux), this process (gateway
 * and `bench serve` client) from `process.cpuUsage()`, and the whole machine's busy share from
 * `/proc/stat` (other processes included).
 * @see proc(5): `/proc/PID/stat` fields 14–15 (`utime`, `stime`) and `/proc/stat`'s `cpu` line, in clock ticks
 */
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';

/**
 * Clock ticks per second of `/proc` times. Linux reports them in USER_HZ, which is 100 on every
 * architecture Node runs on (`getconf CLK_TCK`); reading it would take a child process.
 */
const USER_HZ = 100;

/**
 * CPU seconds (user + system) a process has used so far, from `/proc/PID/stat`.
 * @param pid the process id
 * @returns seconds, with a resolution of 10 ms; `undefined` when `/proc` is not there (not Linux) or the process is gone
 */
export function processCpuSeconds(pid: number): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may hold spaces: count fields after the last ')'.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state), so fields 14 and 15 are rest[11] and rest[12].
  const utime = Number(rest[11]);
  const stime = Number(rest[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) return undefined;
  return (utime + stime) / USER_HZ;
}

/**
 * Busy and total CPU time of the whole machine so far (all CPUs summed), in `USER_HZ` ticks (10 ms),
 * from `/proc/stat`'s first line: busy = user + nice + system + irq + softirq + steal; total adds
 * idle and iowait. Integers, so a busy share computed from two readings is exact (never above 1).
 * @returns `undefined` when `/proc/stat` is not there
 */
export function machineCpuTicks(): { busy: number; total: number } | undefined {
  let line: string | undefined;
  try {
    line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0];
  } catch {
    return undefined;
  }
  const f = (line ?? '').trim().split(/\s+/).slice(1, 9).map(Number);
  if (f.length < 8 || f.some((x) => !Number.isFinite(x))) return undefined;
  const [user, nice, system, idle, iowait, irq, softirq, steal] = f as [number, number, number, number, number, number, number, number];
  const busy = user + nice + system + irq + softirq + steal;
  return { busy, total: busy + idle + iowait };
}

/**
 * Busy share (0–1) of the machine between two {@link machineCpuTicks} readings: busy ticks over all
 * ticks elapsed. Computed on the integer ticks, so a fully busy window gives exactly 1 (a ratio of
 * tick counts divided by `USER_HZ` first can round to 1.0000000000354925).
 * @returns `undefined` when either reading is missing or no tick elapsed
 */
export function machineBusyShare(a: { busy: number; total: number } | undefined, b: { busy: number; total: number } | undefined): number | undefined {
  if (!a || !b || b.total <= a.total) return undefined;
  return Math.min(1, Math.max(0, (b.busy - a.busy) / (b.total - a.total)));
}

/** CPU used by a live stack over one measured window, in cores (CPU seconds / wall seconds). */
export interface LiveCpu {
  /** Wall seconds of the window. */
  readonly wallS: number;
  /** Cores per engine process, in engine order; empty when the engines run in this process or `/proc` is missing. */
  readonly engines: readonly number[];
  /** Cores of this process: the gateway and the `bench serve` client (and the engines with `--engines in-process`). */
  readonly self: number;
  /** Busy share of the whole machine (0–1), every process included; `undefined` without `/proc/stat`. */
  readonly machineBusy?: number;
  /** CPUs of the machine (`os.cpus().length`). */
  readonly cpus: number;
  /** CPU µs of the stack's processes (engines + this one) per output token streamed, when `tokens` was given and > 0. */
  readonly usPerToken?: { readonly engines: number; readonly self: number };
}

/**
 * Starts measuring the CPU of this process and of `enginePids` (engine child processes; pass none
 * for in-process engines). Call the returned function at the end of the window.
 * @param enginePids process ids of the engine processes
 * @returns `stop(tokens?)`: the window's {@link LiveCpu}; `tokens` (output tokens streamed in the window) adds CPU µs per token
 */
export function startCpuMeter(enginePids: readonly number[]): (tokens?: number) => LiveCpu {
  const t0 = process.hrtime.bigint();
  const self0 = process.cpuUsage();
  const eng0 = enginePids.map(processCpuSeconds);
  const m0 = machineCpuTicks();
  return (tokens?: number) => {
    const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
    const d = process.cpuUsage(self0);
    const selfS = (d.user + d.system) / 1e6;
    const engS: number[] = [];
    enginePids.forEach((pid, i) => {
      const a = eng0[i];
      const b = processCpuSeconds(pid);
      if (a !== undefined && b !== undefined) engS.push(b - a);
    });
    // all or nothing: a partial engine list would understate the engines' share
    const engines = engS.length === enginePids.length ? engS : [];
    const machineBusy = machineBusyShare(m0, machineCpuTicks());
    const perCore = (s: number) => (wallS > 0 ? s / wallS : 0);
    const engineSum = engines.reduce((s, x) => s + x, 0);
    return {
      wallS,
      engines: engines.map(perCore),
      self: perCore(selfS),
      ...(machineBusy !== undefined ? { machineBusy } : {}),
      cpus: cpus().length,
      ...(tokens !== undefined && tokens > 0 ? { usPerToken: { engines: (engineSum * 1e6) / tokens, self: (selfS * 1e6) / tokens } } : {}),
    };
  };
}

/** Output tokens of a trace and the span of its arrivals, model time. */
export interface TraceLoad {
  readonly requests: number;
  readonly outputTokens: number;
  /** First to last arrival, s (after `--rate-scale`). */
  readonly arrivalSpanS: number;
}

/**
 * The capacity arithmetic of a live run, in one line: the stack's measured CPU µs per output
 * token times the tokens per wall second the run streams (the trace's output tokens per second
 * of arrivals × the time scale) gives the cores it needs; the same for the whole trace in one
 * minute of wall time per side, and how long the whole trace takes per side at `budgetCores`.
 * @param usPerToken CPU µs per output token of the whole stack (engines + gateway + client)
 * @param run what this run sent; @param whole the whole trace (before `--limit`)
 * @param budgetCores cores the stack may use on this machine @default 1.3
 */
export function capacityLine(usPerToken: number, run: TraceLoad, whole: TraceLoad, timeScale: number, cpus: number, budgetCores = 1.3): string {
  const rate = run.arrivalSpanS > 0 ? run.outputTokens / run.arrivalSpanS : Number.NaN;
  const need = (rate * timeScale * usPerToken) / 1e6;
  const minuteCores = (whole.outputTokens * usPerToken) / 1e6 / 60;
  const wholeMin = (whole.outputTokens * usPerToken) / 1e6 / budgetCores / 60;
  const wholeScale = whole.arrivalSpanS > 0 ? whole.arrivalSpanS / (wholeMin * 60) : Number.NaN;
  const f = (x: number, d: number) => (Number.isFinite(x) ? x.toFixed(d) : '-');
  return (
    `capacity: ${f(usPerToken, 0)} CPU µs per output token (stack, mean of the sides) × ${f(rate, 0)} output tok/s of arrivals (${run.outputTokens} tokens, ${run.requests} requests in ${f(run.arrivalSpanS, 0)} s) × time scale ${timeScale} = ${f(need, 2)} cores of ${cpus}; ` +
    `the whole trace (${whole.requests} requests, ${whole.outputTokens} output tokens, ${f(whole.arrivalSpanS, 0)} s of arrivals) in one minute per side would need ${f(minuteCores, 1)} cores, and at ${budgetCores} cores takes ≥ ${f(wholeMin, 1)} min per side (time scale ≤ ${f(wholeScale, 1)})`
  );
}
