/**
 * Admission under overload, on loopback: goodput (requests meeting both the TTFT and the TPOT SLO,
 * per second) at the fleet's capacity and at 3× it, through the gateway with admission and through
 * the same gateway with admission off (the engines then queue everything, `maxWaiting` unbounded).
 *
 *   node --conditions=@kvmgr/source --import tsx packages/gateway/bench/overload.ts [seconds=8]
 *
 * Fleet: two engine servers (time scale 1, 128 blocks × 16 tokens each) in one child process; the
 * gateway in another; this process generates the load (streamed completions, 480-token unique
 * token-id prompts, 32 output tokens: 512 KV tokens, four fit per engine). Capacity is measured
 * first: a closed loop with as many streams as the fleet's KV holds. Runs are bounded in count and
 * time; every child is stopped by its own handle.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';

const MODEL = 'meta-llama/Llama-3.1-8B-Instruct';
const role = process.env['KVMGR_BENCH_ROLE'];
const PROMPT = 480;
const OUT = 32;
const BLOCKS = 128;

async function runChild(): Promise<void> {
  const closers: (() => Promise<void>)[] = [];
  let msg: unknown;
  if (role === 'engines') {
    const { createEngineServer } = await import('@kvmgr/engine-server');
    const urls: string[] = [];
    for (let i = 0; i < 2; i++) {
      const s = await createEngineServer({ port: 0, timeScale: 1, numGpuBlocks: BLOCKS, seed: i });
      urls.push(s.url);
      closers.push(() => s.close());
    }
    msg = { urls };
  } else {
    const { createGateway } = await import('../src/index.js');
    const urls = JSON.parse(process.env['KVMGR_BENCH_UPSTREAMS'] as string) as string[];
    const admission = process.env['KVMGR_BENCH_ADMISSION'] === '1';
    const sloTtft = Number(process.env['KVMGR_BENCH_TTFT_MS']);
    const gw = await createGateway(
      {
        server: { port: 0, logLevel: 'silent' },
        model: MODEL,
        endpoints: urls.map((url, i) => ({ name: `e${i}`, url })),
        scrape: { intervalMs: 250 },
        // a deferred request that cannot start within its TTFT budget is refused (429) instead of queued
        admission: { enabled: admission, maxQueue: 64, maxWaitMs: Math.max(1, Math.round(sloTtft * 0.6)) },
      },
      { logStream: { write: () => true } },
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
  ttftMs: number;
  tpotMs: number;
}

async function one(url: string): Promise<Result> {
  const k = nextPrompt++;
  const prompt = Array.from({ length: PROMPT }, (_, i) => 1000 + ((k * 7919 + i * 104729) % 120_000));
  const t0 = performance.now();
  try {
    const res = await request(`${url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL, prompt, max_tokens: OUT, stream: true }),
      dispatcher: agent,
      bodyTimeout: 60_000,
      headersTimeout: 60_000,
    });
    if (res.statusCode !== 200) {
      await res.body.dump();
      return { status: res.statusCode, ttftMs: Number.NaN, tpotMs: Number.NaN };
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
    return { status: 200, ttftMs: first - t0, tpotMs: tokens > 1 ? (last - first) / (tokens - 1) : 0 };
  } catch {
    return { status: 0, ttftMs: Number.NaN, tpotMs: Number.NaN };
  }
}

function q(xs: number[], p: number): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : (s[Math.min(s.length - 1, Math.floor(p * s.length))] as number);
}

async function openLoop(url: string, rate: number, seconds: number): Promise<Result[]> {
  const total = Math.round(rate * seconds);
  const out: Promise<Result>[] = [];
  const t0 = performance.now();
  while (out.length < total && performance.now() - t0 < (seconds + 5) * 1000) {
    const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate) + 1);
    while (out.length < due) out.push(one(url));
    await new Promise((r) => setTimeout(r, 2));
  }
  return Promise.all(out);
}

async function closedLoop(url: string, conns: number, seconds: number): Promise<Result[]> {
  const end = performance.now() + seconds * 1000;
  const res: Result[] = [];
  await Promise.all(
    Array.from({ length: conns }, async () => {
      while (performance.now() < end) res.push(await one(url));
    }),
  );
  return res;
}

async function main(): Promise<void> {
  const seconds = Number(process.argv[2] ?? 8);
  if (!(seconds > 0 && seconds <= 15)) throw new Error('seconds in (0, 15]');
  const children: Child[] = [];
  try {
    const engines = await spawn('engines');
    children.push(engines);
    const urls = engines.msg.urls as string[];
    // unloaded latency, direct: sets the SLOs
    const solo: Result[] = [];
    for (let i = 0; i < 4; i++) solo.push(await one(urls[0] as string));
    const ttft0 = q(solo.map((r) => r.ttftMs), 0.5);
    const tpot0 = q(solo.map((r) => r.tpotMs), 0.5);
    const sloTtft = Math.max(250, 5 * ttft0);
    const sloTpot = 3 * tpot0;
    console.log(`unloaded: TTFT ${ttft0.toFixed(1)} ms, TPOT ${tpot0.toFixed(2)} ms → SLO TTFT ≤ ${sloTtft.toFixed(0)} ms, TPOT ≤ ${sloTpot.toFixed(2)} ms`);
    const good = (rs: Result[]) => rs.filter((r) => r.status === 200 && r.ttftMs <= sloTtft && r.tpotMs <= sloTpot).length;
    const gateways: Record<string, Child> = {};
    for (const adm of ['1', '0']) {
      const g = await spawn('gateway', { KVMGR_BENCH_UPSTREAMS: JSON.stringify(urls), KVMGR_BENCH_ADMISSION: adm, KVMGR_BENCH_TTFT_MS: String(sloTtft) });
      children.push(g);
      gateways[adm] = g;
    }
    // capacity: as many streams as the fleet's KV holds, closed loop, through the gateway with admission
    const slots = 2 * Math.floor((BLOCKS * 16) / (PROMPT + OUT));
    const cap = await closedLoop(gateways['1']?.msg.url as string, slots, Math.min(5, seconds));
    const capacity = cap.filter((r) => r.status === 200).length / Math.min(5, seconds);
    console.log(`capacity (closed loop, ${slots} streams): ${capacity.toFixed(1)} req/s; goodput there ${(good(cap) / Math.min(5, seconds)).toFixed(1)} req/s`);
    console.log('\n| gateway | offered req/s | goodput req/s | vs at capacity | 200 | 429 | other | TTFT p50 / p99 ms | TPOT p50 / p99 ms |');
    console.log('|---|---|---|---|---|---|---|---|---|');
    for (const adm of ['1', '0']) {
      let atCap = 0;
      for (const mult of [1, 3]) {
        const rate = capacity * mult;
        const rs = await openLoop(gateways[adm]?.msg.url as string, rate, seconds);
        const gp = good(rs) / seconds;
        if (mult === 1) atCap = gp;
        const ok = rs.filter((r) => r.status === 200);
        console.log(
          `| admission ${adm === '1' ? 'on' : 'off'} | ${rate.toFixed(1)} (${mult}×) | **${gp.toFixed(1)}** | ${mult === 1 ? '—' : `${((100 * gp) / atCap).toFixed(0)}%`} | ${ok.length} | ${rs.filter((r) => r.status === 429).length} | ${rs.filter((r) => r.status !== 200 && r.status !== 429).length} | ${q(ok.map((r) => r.ttftMs), 0.5).toFixed(0)} / ${q(ok.map((r) => r.ttftMs), 0.99).toFixed(0)} | ${q(ok.map((r) => r.tpotMs), 0.5).toFixed(1)} / ${q(ok.map((r) => r.tpotMs), 0.99).toFixed(1)} |`,
        );
      }
    }
  } finally {
    for (const c of children.reverse()) await stop(c);
    await agent.close();
  }
}

if (role !== undefined) await runChild();
else await main();
