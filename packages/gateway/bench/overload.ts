/**
 * Admission under overload, on loopback: goodput (requests meeting both their TTFT and TPOT SLO,
 * per second) at 1×, 2× and 3× the fleet's capacity, through the gateway with admission and
 * through a second gateway on the same fleet with admission off (the engines then queue
 * everything, `maxWaiting` unbounded), for two workload shapes.
 *
 *   node --conditions=@kvmgr/source --import tsx packages/gateway/bench/overload.ts [seconds=8] [workload=all|prefill|decode] [timeScale=1]
 *
 * Fleet: two engine servers (128 blocks × 16 tokens each, simulated Llama-3.1-8B on H100) in one
 * child process; `timeScale` < 1 runs the modelled GPU in slow motion (0.5: a modelled second
 * takes two wall seconds), which shrinks the share of the latencies that this machine's CPU
 * contention adds (the processes' own work per request does not slow down with it); the two gateways in one child each; this process generates the
 * load (streamed completions with unique token-id prompts, so no prefix hits). Workloads:
 * `prefill` = 480 prompt + 32 output tokens (512 KV tokens, four fit per engine), `decode` = 64
 * prompt + 192 output tokens (256 KV tokens, eight per engine).
 *
 * The SLOs come from the fleet unloaded (one request per engine at a time, after a warm-up): TTFT ≤ max(250 ms, 5 × its median),
 * TPOT ≤ 3 × its median. Every request carries them as `x-slo-ttft-ms` / `x-slo-tpot-ms` (the
 * gateway without admission ignores them). Capacity is measured first: a closed loop on the
 * engines directly with as many streams as their KV holds (no preemption), starts staggered over
 * one unloaded request time, completions counted over max(6 s, three request times) after it. Per phase the table gives the
 * client's view (200 / 429 by reason / other, SLO misses among the 200s, latency quantiles, how
 * late the open loop sent, p99), the gateway's admission counters (admitted at once, deferred)
 * and the engines' preemptions. Runs are bounded in count and time; every child is stopped by
 * its own handle.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';

const MODEL = 'meta-llama/Llama-3.1-8B-Instruct';
const role = process.env['KVMGR_BENCH_ROLE'];
const BLOCKS = 128;
const WORKLOADS = { prefill: { prompt: 480, out: 32 }, decode: { prompt: 64, out: 192 } } as const;
type WorkloadName = keyof typeof WORKLOADS;

async function runChild(): Promise<void> {
  const closers: (() => Promise<void>)[] = [];
  let msg: unknown;
  if (role === 'engines') {
    const { createEngineServer } = await import('@kvmgr/engine-server');
    const urls: string[] = [];
    for (let i = 0; i < 2; i++) {
      const s = await createEngineServer({ port: 0, timeScale: Number(process.env['KVMGR_BENCH_TIME_SCALE'] ?? 1), numGpuBlocks: BLOCKS, seed: i });
      urls.push(s.url);
      closers.push(() => s.close());
    }
    msg = { urls };
  } else {
    const { createGateway } = await import('../src/index.js');
    const urls = JSON.parse(process.env['KVMGR_BENCH_UPSTREAMS'] as string) as string[];
    const admission = process.env['KVMGR_BENCH_ADMISSION'] === '1';
    // the gateway's own view of each request (its log line): TTFT from arrival, by admission decision
    const seen: GatewaySeen = { admit: [], defer: [] };
    const logStream = {
      write: (line: string) => {
        for (const l of line.split('\n')) {
          if (!l.includes('"msg":"request"')) continue;
          const r = JSON.parse(l) as { status: number; ttftMs: number | null; decision?: { admission?: 'admit' | 'defer' } };
          if (r.status === 200 && r.ttftMs !== null) seen[r.decision?.admission ?? 'admit'].push(r.ttftMs);
        }
        return true;
      },
    };
    process.on('message', () => {
      process.send?.({ seen });
      seen.admit = [];
      seen.defer = [];
    });
    const gw = await createGateway(
      {
        server: { port: 0, logLevel: 'info' },
        model: MODEL,
        endpoints: urls.map((url, i) => ({ name: `e${i}`, url })),
        scrape: { intervalMs: 250 },
        admission: { enabled: admission },
      },
      { logStream },
    );
    closers.push(() => gw.close());
    msg = { url: gw.url };
  }
  process.on('SIGTERM', () => {
    void Promise.all(closers.map((c) => c())).then(() => process.exit(0));
  });
  process.send?.(msg);
}

interface Child {
  proc: ChildProcess;
  msg: { url?: string; urls?: string[] };
}

/** TTFT from arrival at the gateway, ms, of the 200s it served, by admission decision. */
interface GatewaySeen {
  admit: number[];
  defer: number[];
}

/** What a gateway child saw since the last call (its lists are then emptied). */
function gatewaySeen(c: Child): Promise<GatewaySeen> {
  return new Promise((resolve) => {
    c.proc.once('message', (m) => resolve((m as { seen: GatewaySeen }).seen));
    c.proc.send('seen');
  });
}

function spawn(r: string, env: Record<string, string> = {}): Promise<Child> {
  const proc = fork(fileURLToPath(import.meta.url), [], {
    env: { ...process.env, KVMGR_BENCH_ROLE: r, ...env },
    execArgv: ['--conditions=@kvmgr/source', '--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    proc.once('message', (m) => resolve({ proc, msg: m as Child['msg'] }));
    proc.once('exit', (code) => reject(new Error(`${r} exited with ${code} before it was ready`)));
  });
}

async function stop(c: Child): Promise<void> {
  if (c.proc.exitCode !== null) return;
  const done = new Promise<void>((r) => c.proc.once('exit', () => r()));
  c.proc.kill('SIGTERM');
  const t = setTimeout(() => c.proc.kill('SIGKILL'), 5000);
  await done;
  clearTimeout(t);
}

const agent = new Agent({ connections: 1024, keepAliveTimeout: 10_000 });
let nextPrompt = 0;

interface Result {
  status: number;
  /** `error.code` of a non-200 answer. */
  code: string;
  ttftMs: number;
  tpotMs: number;
}

interface Load {
  prompt: number;
  out: number;
  headers: Record<string, string>;
}

async function one(url: string, load: Load): Promise<Result> {
  const k = nextPrompt++;
  const prompt = Array.from({ length: load.prompt }, (_, i) => 1000 + ((k * 7919 + i * 104729) % 120_000));
  const t0 = performance.now();
  try {
    const res = await request(`${url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...load.headers },
      body: JSON.stringify({ model: MODEL, prompt, max_tokens: load.out, stream: true }),
      dispatcher: agent,
      bodyTimeout: 60_000,
      headersTimeout: 60_000,
    });
    if (res.statusCode !== 200) {
      const body = (await res.body.json().catch(() => ({}))) as { error?: { code?: string } };
      return { status: res.statusCode, code: String(body.error?.code ?? ''), ttftMs: Number.NaN, tpotMs: Number.NaN };
    }
    let first = 0;
    let last = 0;
    let tokens = 0;
    const dec = new TextDecoder();
    for await (const chunk of res.body) {
      const text = dec.decode(chunk as Uint8Array, { stream: true });
      const n = (text.match(/"text":/g) ?? []).length;
      if (n > 0) {
        last = performance.now();
        if (tokens === 0) first = last;
        tokens += n;
      }
    }
    return { status: 200, code: '', ttftMs: first - t0, tpotMs: tokens > 1 ? (last - first) / (tokens - 1) : 0 };
  } catch (e) {
    return { status: 0, code: (e as Error).message, ttftMs: Number.NaN, tpotMs: Number.NaN };
  }
}

function q(xs: number[], p: number): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : (s[Math.min(s.length - 1, Math.floor(p * s.length))] as number);
}

/** Evenly spaced arrivals at `rate` for `seconds`; also how late each was sent, ms. */
async function openLoop(url: string, load: Load, rate: number, seconds: number): Promise<{ rs: Result[]; lateMs: number[] }> {
  const total = Math.round(rate * seconds);
  const out: Promise<Result>[] = [];
  const lateMs: number[] = [];
  const t0 = performance.now();
  while (out.length < total && performance.now() - t0 < (seconds + 5) * 1000) {
    const now = performance.now();
    const due = Math.min(total, Math.floor(((now - t0) / 1000) * rate) + 1);
    while (out.length < due) {
      lateMs.push(now - t0 - (out.length / rate) * 1000);
      out.push(one(url, load));
    }
    await new Promise((r) => setTimeout(r, 2));
  }
  return { rs: await Promise.all(out), lateMs };
}

/**
 * Throughput of a closed loop, req/s: `conns` streams, stream i on `urls[i % urls.length]`,
 * started `i / conns` of `e2eMs` apart (so that completions do not come in lockstep), each
 * sending its next request when the last one ends; completions counted over
 * `max(6 s, 3 × e2eMs)` after a ramp of `e2eMs`.
 */
async function closedLoop(urls: readonly string[], load: Load, conns: number, e2eMs: number): Promise<number> {
  const t0 = performance.now();
  const from = t0 + e2eMs;
  const windowMs = Math.max(6000, 3 * e2eMs);
  const end = from + windowMs;
  let done = 0;
  await Promise.all(
    Array.from({ length: conns }, async (_, i) => {
      await new Promise((r) => setTimeout(r, (i / conns) * e2eMs));
      while (performance.now() < end) {
        const r = await one(urls[i % urls.length] as string, load);
        const at = performance.now();
        if (r.status === 200 && at >= from && at <= end) done++;
      }
    }),
  );
  return (done * 1000) / windowMs;
}

/** Sum of the samples of a Prometheus text family whose labels contain `match`. */
async function metric(url: string, name: string, match = ''): Promise<number> {
  const text = await (await request(`${url}/metrics`, { dispatcher: agent })).body.text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || (line[name.length] !== '{' && line[name.length] !== ' ')) continue;
    if (match !== '' && !line.includes(match)) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/**
 * Waits (at most 10 s) until both gateways see every endpoint healthy, nothing in flight and no
 * queue: a phase that flooded the engines can make their scrapes time out, and the next phase
 * should not start against endpoints taken out of service by the previous one.
 */
async function settle(gateways: readonly string[]): Promise<void> {
  const end = performance.now() + 10_000;
  while (performance.now() < end) {
    const states = await Promise.all(
      gateways.map(async (g) => (await (await request(`${g}/admin/state`, { dispatcher: agent })).body.json()) as { queueDepth: number; endpoints: { healthy: boolean; inFlight: number }[] }),
    );
    if (states.every((st) => st.queueDepth === 0 && st.endpoints.every((e) => e.healthy && e.inFlight === 0))) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  console.log('(gateways not settled after 10 s)');
}

interface Counters {
  admit: number;
  defer: number;
  preemptions: number;
}

async function counters(gw: string, engines: readonly string[]): Promise<Counters> {
  const pre = await Promise.all(engines.map((u) => metric(u, 'vllm:num_preemptions_total')));
  return {
    admit: await metric(gw, 'kvmgr_gateway_admission_decisions_total', 'decision="admit"'),
    defer: await metric(gw, 'kvmgr_gateway_admission_decisions_total', 'decision="defer"'),
    preemptions: pre.reduce((a, b) => a + b, 0),
  };
}

async function workload(name: WorkloadName, seconds: number, engines: readonly string[], children: Record<'on' | 'off', Child>): Promise<void> {
  const gateways = { on: children.on.msg.url as string, off: children.off.msg.url as string };
  const shape = WORKLOADS[name];
  // unloaded latency, direct, after a warm-up: sets the SLOs
  const bare: Load = { prompt: shape.prompt, out: shape.out, headers: {} };
  // one request per engine at a time: each engine unloaded (a warm-up round, then three)
  await Promise.all(engines.map((u) => one(u, bare)));
  const solo: Result[] = [];
  for (let i = 0; i < 3; i++) solo.push(...(await Promise.all(engines.map((u) => one(u, bare)))));
  const ttft0 = q(solo.map((r) => r.ttftMs), 0.5);
  const tpot0 = q(solo.map((r) => r.tpotMs), 0.5);
  const e2e0 = ttft0 + (shape.out - 1) * tpot0;
  const sloTtft = Math.round(Math.max(250, 5 * ttft0));
  const sloTpot = Math.round(3 * tpot0 * 100) / 100;
  const load: Load = { ...bare, headers: { 'x-slo-ttft-ms': String(sloTtft), 'x-slo-tpot-ms': String(sloTpot) } };
  console.log(
    `\n### workload ${name}: ${shape.prompt} prompt + ${shape.out} output tokens\n\nunloaded: TTFT ${ttft0.toFixed(1)} ms, TPOT ${tpot0.toFixed(2)} ms → SLO TTFT ≤ ${sloTtft} ms, TPOT ≤ ${sloTpot} ms`,
  );
  const good = (rs: Result[]) => rs.filter((r) => r.status === 200 && r.ttftMs <= sloTtft && r.tpotMs <= sloTpot).length;
  // capacity: the engines themselves (no gateway), as many streams as their KV holds, closed loop
  const slots = engines.length * Math.floor((BLOCKS * 16) / (shape.prompt + shape.out));
  const capacity = await closedLoop(engines, load, slots, e2e0);
  console.log(`capacity (closed loop on the engines directly, ${slots} streams): ${capacity.toFixed(1)} req/s\n`);
  console.log(
    '| gateway | offered req/s | goodput req/s | vs 1× | 200 | 429 (reason) | other | admitted at once / deferred | 200 missing TTFT / TPOT SLO | over TTFT SLO at the gateway: at once / deferred | TTFT p50 / p99 ms | TPOT p50 / p99 ms | preemptions | client late p99 ms |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  // the two gateways alternate at each load, so that both see the same stretch of this shared machine
  const atCap = { on: 0, off: 0 };
  const at3 = { on: 0, off: 0 };
  for (const mult of [1, 2, 3]) {
    for (const adm of ['on', 'off'] as const) {
      const rate = capacity * mult;
      await settle([gateways.on, gateways.off]);
      await gatewaySeen(children[adm]);
      const c0 = await counters(gateways[adm], engines);
      const { rs, lateMs } = await openLoop(gateways[adm], load, rate, seconds);
      const c1 = await counters(gateways[adm], engines);
      const gs = await gatewaySeen(children[adm]);
      const over = (xs: number[]) => `${xs.filter((x) => x > sloTtft).length}/${xs.length}`;
      const gp = good(rs) / seconds;
      if (mult === 1) atCap[adm] = gp;
      if (mult === 3) at3[adm] = gp;
      const ok = rs.filter((r) => r.status === 200);
      const rejected = rs.filter((r) => r.status === 429);
      const reasons = new Map<string, number>();
      for (const r of rejected) reasons.set(r.code, (reasons.get(r.code) ?? 0) + 1);
      const why = [...reasons].map(([k, v]) => `${k} ${v}`).join(', ');
      const others = rs.filter((r) => r.status !== 200 && r.status !== 429);
      console.log(
        [
          '',
          `admission ${adm}`,
          `${rate.toFixed(1)} (${mult}×)`,
          `**${gp.toFixed(1)}**`,
          mult === 1 ? '—' : `${((100 * gp) / atCap[adm]).toFixed(0)}%`,
          ok.length,
          rejected.length === 0 ? '0' : `${rejected.length} (${why})`,
          others.length === 0 ? '0' : `${others.length} (${others[0]?.status} ${others[0]?.code})`,
          adm === 'on' ? `${c1.admit - c0.admit} / ${c1.defer - c0.defer}` : '—',
          `${ok.filter((r) => !(r.ttftMs <= sloTtft)).length} / ${ok.filter((r) => !(r.tpotMs <= sloTpot)).length}`,
          adm === 'on' ? `${over(gs.admit)} / ${over(gs.defer)}` : over(gs.admit),
          `${q(ok.map((r) => r.ttftMs), 0.5).toFixed(0)} / ${q(ok.map((r) => r.ttftMs), 0.99).toFixed(0)}`,
          `${q(ok.map((r) => r.tpotMs), 0.5).toFixed(1)} / ${q(ok.map((r) => r.tpotMs), 0.99).toFixed(1)}`,
          c1.preemptions - c0.preemptions,
          q(lateMs, 0.99).toFixed(0),
          '',
        ].join(' | '),
      );
    }
  }
  const pct = (a: number, b: number) => `${((100 * a) / b).toFixed(0)}%`;
  console.log(
    `\n${name}: goodput at 3× / at 1×: admission on ${pct(at3.on, atCap.on)}, off ${pct(at3.off, atCap.off)}; at 1×, admission on / off ${pct(atCap.on, atCap.off)}; at 3×, on / off at 1× ${pct(at3.on, atCap.off)}`,
  );
}

async function main(): Promise<void> {
  const seconds = Number(process.argv[2] ?? 8);
  if (!(seconds > 0 && seconds <= 15)) throw new Error(`seconds: expected a number in (0, 15], got ${process.argv[2]}`);
  const which = process.argv[3] ?? 'all';
  if (which !== 'all' && !(which in WORKLOADS)) throw new Error(`workload: expected all, ${Object.keys(WORKLOADS).join(', ')}, got ${which}`);
  const timeScale = Number(process.argv[4] ?? 1);
  if (!(timeScale > 0 && timeScale <= 100)) throw new Error(`timeScale: expected a number in (0, 100], got ${process.argv[4]}`);
  console.log(`overload bench: ${seconds} s per phase, time scale ${timeScale}`);
  const children: Child[] = [];
  try {
    const engines = await spawn('engines', { KVMGR_BENCH_TIME_SCALE: String(timeScale) });
    children.push(engines);
    const urls = engines.msg.urls as string[];
    const gateways = {} as Record<'on' | 'off', Child>;
    for (const adm of ['on', 'off'] as const) {
      const g = await spawn('gateway', { KVMGR_BENCH_UPSTREAMS: JSON.stringify(urls), KVMGR_BENCH_ADMISSION: adm === 'on' ? '1' : '0' });
      children.push(g);
      gateways[adm] = g;
    }
    for (const name of Object.keys(WORKLOADS) as WorkloadName[]) if (which === 'all' || which === name) await workload(name, seconds, urls, gateways);
  } finally {
    for (const c of children.reverse()) await stop(c);
    await agent.close();
  }
}

if (role !== undefined) await runChild();
else await main();
