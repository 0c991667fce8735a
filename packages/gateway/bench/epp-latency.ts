/**
 * Picker latency of `kvmgr epp` per request: one ext_proc stream per request on loopback,
 * timed from the request's scheduled start to the picker's answer to the body (request headers
 * → CONTINUE, then the body → destination). Issue #26 check 3.
 *
 *   node --conditions=@kvmgr/source --import tsx packages/gateway/bench/epp-latency.ts [rate=1000] [seconds=10] [promptWords=600]
 *
 * Two processes: this one generates the load (a grpc-js ext_proc client over the same Envoy
 * protos, open loop at a fixed rate, bounded in count and time); the child runs the picker over
 * four stub model servers (node:http answering `/metrics` as vLLM does; the picker never sends
 * them a request, as in production where Envoy does). The endpoints have no KV events, so the
 * picker's index is its routing history: every finished stream records its prompt's blocks on
 * the picked endpoint. The workload is 64 conversations, each a chat with its own long system
 * prompt (`promptWords` words, ~1.3 tokens per word) and a new user turn per request, so most
 * requests hit a cached prefix in the index.
 *
 * The load generator writes each request's two messages as bytes encoded ahead of its phase
 * (with the method's own proto-loader serializer) and reads the answers as bytes, so that on a
 * machine it shares with the picker it takes as little CPU as it can;
 * `KVMGR_BENCH_CLIENT=objects` uses the test client instead (message objects per request) to
 * compare.
 *
 * Reported, in ms: p50/p90/p99/max from the scheduled start (includes any delay of the load
 * generator itself, i.e. corrected for coordinated omission) and from the actual send, the
 * picker process's and the client process's CPU time per request (user + system, less
 * sensitive to a loaded machine than the latencies: 1000 / their sum is the ceiling of one free
 * core), and the picker's GC pauses in the phase (count / total / longest, scavenges apart from
 * mark-compacts: the source of most of its latency spikes); then the
 * service time (one stream at a time) and the ceiling: open-loop steps from `rate`/40 up to
 * 4 × `rate` until the picker falls behind (an error, achieved < 95 % of offered, or p99 > 250 ms;
 * `rate` itself is always run), and a closed loop of 32 concurrent streams.
 *
 * `KVMGR_BENCH_PICKER=null` replaces the picker with the transport floor: a grpc-js server that
 * answers every stream with the same two pre-encoded answers and decides nothing.
 * `KVMGR_BENCH_STEPS=300,600` runs those open-loop steps only (for A/B runs at fixed rates).
 * `KVMGR_BENCH_PROF=dir` writes the picker's CPU profile of each measured phase there
 * (`KVMGR_BENCH_PROF_HEAP=1`: its allocations instead; `=live`: only the allocations still held at
 * the phase's end); `KVMGR_BENCH_PICKER_NODE_OPTIONS` adds node options to the picker only (e.g.
 * `--max-semi-space-size=32`, or `--trace-gc --trace-gc-nvp` for the bytes each scavenge survived
 * and promoted).
 *
 * The child is stopped by its own handle at the end (SIGTERM, then awaited).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { cpus, loadavg } from 'node:os';
import { type ProcessingRequest, type ProcessingResponse, loadEppProtos, readRequest } from '../src/index.js';
import { ExtProcCall, destinationOf, headersMsg, postHeaders } from '../test/epp-client.js';

const MODEL = 'meta-llama/Llama-3.1-8B-Instruct';
/** A request without an answer by then counts as an error (its stream is cancelled). */
const TIMEOUT_MS = 3000;
/**
 * A step is sustained with no errors, ≥ 95 % of the offered rate achieved, and p99 (from the
 * scheduled start) ≤ this: on a shared machine jitter alone reaches tens of ms, while a picker
 * that falls behind builds a queue whose p99 grows to seconds within a step.
 */
const KEPT_P99_MS = 250;
const role = process.env['KVMGR_BENCH_ROLE'];

// ---- child: the picker over four stub model servers ---------------------------------------------

const METRICS = `vllm:num_requests_running{model_name="${MODEL}",engine="0"} 0
vllm:num_requests_waiting{model_name="${MODEL}",engine="0"} 0
vllm:kv_cache_usage_perc{model_name="${MODEL}",engine="0"} 0.1
vllm:cache_config_info{block_size="16",enable_prefix_caching="True",num_gpu_blocks="65536",engine="0"} 1
vllm:prefix_cache_queries_total{model_name="${MODEL}",engine="0"} 0
vllm:prefix_cache_hits_total{model_name="${MODEL}",engine="0"} 0
`;

async function stubServer(): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
    res.end(METRICS);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/**
 * The transport floor (KVMGR_BENCH_PICKER=null): a grpc-js ext_proc server over the same protos
 * and server options that answers every stream at once with the picker's two answers, encoded
 * once (CONTINUE to the headers; the destination, header and metadata, to the body), and
 * decides nothing. The picker's CPU per request less this one's is what kvmgr's decision costs.
 */
async function nullPicker(): Promise<{ address: string; close(): Promise<void> }> {
  const method = loadEppProtos().extProc.service['Process'] as grpc.MethodDefinition<ProcessingRequest, ProcessingResponse>;
  const header = (key: string, value: string) => ({ header: { key, raw_value: Buffer.from(value) }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' as const });
  const cont = method.responseSerialize({
    request_headers: { response: { status: 'CONTINUE' } },
    mode_override: { request_body_mode: 'BUFFERED', response_header_mode: 'SEND', response_body_mode: 'NONE', request_trailer_mode: 'SKIP', response_trailer_mode: 'SKIP' },
  });
  const address = '127.0.0.1:1';
  const pick = method.responseSerialize({
    request_body: { response: { status: 'CONTINUE', header_mutation: { set_headers: [header('x-gateway-destination-endpoint', address)] }, clear_route_cache: true } },
    dynamic_metadata: { fields: { 'envoy.lb': { structValue: { fields: { 'x-gateway-destination-endpoint': { stringValue: address } } } } } },
  });
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 5 * 1024 * 1024, 'grpc.enable_channelz': 0 });
  server.addService({ Process: { ...method, responseSerialize: (b: Buffer) => b } } as grpc.ServiceDefinition, {
    Process: (call: grpc.ServerDuplexStream<ProcessingRequest, Buffer>) => {
      call.on('data', (m: ProcessingRequest) => {
        if (m.request === 'request_headers') call.write(cont);
        else if (m.request === 'request_body' && m.request_body?.end_of_stream === true) call.write(pick);
      });
      call.on('end', () => call.end());
      call.on('error', () => undefined);
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  return { address: `127.0.0.1:${port}`, close: () => new Promise<void>((r) => server.tryShutdown(() => r())) };
}

async function runChild(): Promise<void> {
  const { createEpp } = await import('../src/index.js');
  const stubs = await Promise.all([0, 1, 2, 3].map(() => stubServer()));
  const epp = process.env['KVMGR_BENCH_PICKER'] === 'null' ? await nullPicker() : await createEpp(
    {
      gateway: { model: MODEL, endpoints: stubs.map((s, i) => ({ name: `e${i}`, url: s.url })), admission: { maxQueue: 4096 }, server: { logLevel: 'info' } },
      grpcHost: '127.0.0.1',
      grpcPort: 0,
      metricsPort: null,
      shutdownGraceMs: 1000,
    },
    // one JSON line per request is produced (pino serialises it) and dropped here
    { logStream: { write: () => true } },
  );
  process.on('SIGTERM', () => {
    void (async () => {
      await epp.close();
      for (const s of stubs) await s.close();
      process.exit(0);
    })();
  });
  // GC pauses since the last report, by kind: the picker's latency spikes are compared with them
  const gc = { minor: { n: 0, ms: 0, max: 0 }, major: { n: 0, ms: 0, max: 0 } };
  const { PerformanceObserver, constants } = await import('node:perf_hooks');
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind;
      const g = kind === constants.NODE_PERFORMANCE_GC_MAJOR ? gc.major : gc.minor;
      g.n++;
      g.ms += e.duration;
      g.max = Math.max(g.max, e.duration);
    }
  }).observe({ entryTypes: ['gc'] });
  // the parent asks for this process's CPU time (µs, user + system) and GC pauses around each phase
  process.on('message', (m) => {
    if (m === 'cpu') {
      const u = process.cpuUsage();
      process.send?.({ cpuUs: u.user + u.system, gc: structuredClone(gc) });
      for (const g of [gc.minor, gc.major]) g.n = g.ms = g.max = 0;
    }
  });
  // KVMGR_BENCH_PROF=dir: one profile per measured phase (startup and warm-up left out): CPU
  // (`<phase>.cpuprofile`, sampled every 250 µs), or with KVMGR_BENCH_PROF_HEAP=1 the allocations
  // (`<phase>.heapprofile`, one sample per 4 KiB allocated, garbage included; KVMGR_BENCH_PROF_HEAP=live: only the
  // objects still alive at the phase's end, i.e. what outlived its requests)
  const profDir = process.env['KVMGR_BENCH_PROF'];
  if (profDir !== undefined) {
    const heapMode = process.env['KVMGR_BENCH_PROF_HEAP'];
    const heap = heapMode === '1' || heapMode === 'live';
    // 'live': the samples of objects collected before the profile is written are dropped, so it shows what the phase's allocations still hold at its end (what the scavenges copied and promoted)
    const collected = heapMode !== 'live';
    const { Session } = await import('node:inspector/promises');
    const { mkdirSync, writeFileSync } = await import('node:fs');
    mkdirSync(profDir, { recursive: true });
    const session = new Session();
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 250 });
    process.on('message', (m) => {
      if (typeof m !== 'object' || m === null || !('prof' in m)) return;
      const { prof, name } = m as { prof: 'start' | 'stop'; name: string };
      void (async () => {
        if (heap) {
          // the two include flags (V8 ≥ 11) keep the samples of objects already collected: the garbage is what the scavenges cost
          if (prof === 'start') await session.post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMinorGC: collected, includeObjectsCollectedByMajorGC: collected } as { samplingInterval: number });
          else writeFileSync(`${profDir}/${name}.heapprofile`, JSON.stringify((await session.post('HeapProfiler.stopSampling')).profile));
        } else if (prof === 'start') await session.post('Profiler.start');
        else writeFileSync(`${profDir}/${name}.cpuprofile`, JSON.stringify((await session.post('Profiler.stop')).profile));
        process.send?.({ profiled: prof });
      })();
    });
  }
  process.send?.({ address: epp.address });
}

/** GC pauses of one kind: count, total and longest, ms. */
interface GcPauses {
  n: number;
  ms: number;
  max: number;
}

/** Picker GC pauses since the previous {@link pickerCpuUs} call (scavenges and the rest = minor; mark-compact = major). */
let pickerGc: { minor: GcPauses; major: GcPauses } = { minor: { n: 0, ms: 0, max: 0 }, major: { n: 0, ms: 0, max: 0 } };

/** The picker process's CPU time so far, µs (and its GC pauses since the last call, in `pickerGc`). */
function pickerCpuUs(proc: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    const on = (m: unknown) => {
      if (typeof m === 'object' && m !== null && 'cpuUs' in m) {
        proc.off('message', on);
        pickerGc = (m as unknown as { gc: typeof pickerGc }).gc;
        resolve((m as { cpuUs: number }).cpuUs);
      }
    };
    proc.on('message', on);
    proc.send('cpu');
  });
}

/** Starts or stops (and writes as `<name>.cpuprofile`) the picker's CPU profile; a no-op without KVMGR_BENCH_PROF. */
function pickerProfile(proc: ChildProcess, prof: 'start' | 'stop', name = ''): Promise<void> {
  if (process.env['KVMGR_BENCH_PROF'] === undefined) return Promise.resolve();
  return new Promise((resolve) => {
    const on = (m: unknown) => {
      if (typeof m === 'object' && m !== null && 'profiled' in m) {
        proc.off('message', on);
        resolve();
      }
    };
    proc.on('message', on);
    proc.send({ prof, name });
  });
}

// ---- parent: load ------------------------------------------------------------------------------

function spawnPicker(): Promise<{ proc: ChildProcess; address: string }> {
  const proc = fork(fileURLToPath(import.meta.url), [], {
    env: { ...process.env, KVMGR_BENCH_ROLE: 'epp' },
    execArgv: ['--conditions=@kvmgr/source', '--import', 'tsx', ...(process.env['KVMGR_BENCH_PICKER_NODE_OPTIONS'] ?? '').split(' ').filter((x) => x !== '')],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    proc.once('message', (m) => resolve({ proc, address: (m as { address: string }).address }));
    proc.once('exit', (code) => reject(new Error(`picker exited with ${code} before it was ready`)));
  });
}

async function stop(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null) return;
  const done = new Promise<void>((r) => proc.once('exit', () => r()));
  proc.kill('SIGTERM');
  const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
  await done;
  clearTimeout(t);
}

function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

/** A request's two ext_proc messages (request headers, then the whole body), protobuf-encoded. */
interface Encoded {
  readonly headers: Buffer;
  readonly body: Buffer;
}

/**
 * The workload: 64 conversations; request `i` is conversation `i % 64`'s next user turn. Its
 * messages are encoded with the ext_proc method's own serializer (proto-loader over the same
 * Envoy protos as the picker), ahead of each phase (`prepare`), so that the load generator only
 * writes bytes while it is timed.
 */
class Workload {
  private readonly systems: string[];
  private readonly serialize: (m: ProcessingRequest) => Buffer;

  constructor(promptWords: number) {
    this.systems = Array.from({ length: 64 }, (_, s) => {
      const w: string[] = [];
      for (let i = 0; i < promptWords; i++) w.push(`topic${s}-${(i * 7919 + s * 104729) % 1000}`);
      return `You are assistant ${s}. Background: ${w.join(' ')}.`;
    });
    this.serialize = (loadEppProtos().extProc.service['Process'] as grpc.MethodDefinition<ProcessingRequest, ProcessingResponse>).requestSerialize;
  }

  /** Request `i`'s JSON body. */
  body(i: number): Buffer {
    const s = i % 64;
    const body = { model: MODEL, max_tokens: 64, messages: [{ role: 'system', content: this.systems[s] }, { role: 'user', content: `Question ${Math.floor(i / 64)} of conversation ${s}: what about item ${i}?` }] };
    return Buffer.from(JSON.stringify(body));
  }

  /** Request `i`'s headers message (as {@link headersMsg} builds it for the test client). */
  headersMsg(i: number): ProcessingRequest {
    return headersMsg(postHeaders(`b-${i}`, '/v1/chat/completions'));
  }

  encode(i: number): Encoded {
    return { headers: this.serialize(this.headersMsg(i)), body: this.serialize({ request_body: { body: this.body(i), end_of_stream: true } }) };
  }

  /** Requests `start … start + n - 1`, encoded. */
  prepare(start: number, n: number): Encoded[] {
    return Array.from({ length: n }, (_, k) => this.encode(start + k));
  }
}

interface Sample {
  /** From the scheduled start, ms. */
  sched: number;
  /** From the actual send, ms. */
  sent: number;
}

const PROCESS_PATH = '/envoy.service.ext_proc.v3.ExternalProcessor/Process';
const rawBytes = (b: Buffer): Buffer => b;
/** One metadata object for every call (grpc-js copies what it sends). */
const NO_METADATA = new grpc.Metadata();
/** The picker's answers to bodies seen so far (latin1 of their bytes) → the destination in them. */
const destinations = new Map<string, string>();

/** The destination of an encoded answer to a body, or an error naming what came instead. */
function destinationOfBytes(r: Buffer): string | Error {
  const key = r.toString('latin1');
  const hit = destinations.get(key);
  if (hit !== undefined) return hit;
  const decoded = (loadEppProtos().extProc.service['Process'] as grpc.MethodDefinition<ProcessingRequest, ProcessingResponse>).responseDeserialize(r);
  const d = destinationOf(decoded);
  if (d.header === undefined || d.header !== d.metadata) return new Error(`no destination (${JSON.stringify(decoded.immediate_response?.details ?? decoded)})`);
  if (destinations.size < 4096) destinations.set(key, d.header);
  return d.header;
}

/**
 * One request through the header and body phases over one ext_proc stream, writing pre-encoded
 * messages (grpc-js's serialize hook passes the bytes through) and reading the answers as bytes
 * (an answer seen before is not decoded again); the stream is ended after the answer (not timed).
 */
function one(client: grpc.Client, i: number, m: Encoded, scheduled: number): Promise<Sample> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const call = client.makeBidiStreamRequest<Buffer, Buffer>(PROCESS_PATH, rawBytes, rawBytes, NO_METADATA, {});
    let answers = 0;
    const timer = setTimeout(() => {
      call.cancel();
      reject(new Error('no ext_proc response in time'));
    }, TIMEOUT_MS);
    call.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    call.on('data', (r: Buffer) => {
      answers++;
      if (answers === 1) call.write(m.body); // the CONTINUE to the headers
      if (answers !== 2) return;
      const t1 = performance.now();
      clearTimeout(timer);
      call.end();
      const d = destinationOfBytes(r);
      if (typeof d !== 'string') reject(new Error(`request ${i}: ${d.message}`));
      else resolve({ sched: t1 - scheduled, sent: t1 - t0 });
    });
    call.write(m.headers);
  });
}

/**
 * The same request with the test client ({@link ExtProcCall}: message objects serialised by
 * grpc-js per write, answers decoded, metadata and timers per call, the body built per request);
 * `KVMGR_BENCH_CLIENT=objects` selects it, to compare the load generator's own cost.
 */
async function oneWithObjects(client: grpc.Client, i: number, w: Workload, scheduled: number): Promise<Sample> {
  const t0 = performance.now();
  const c = new ExtProcCall(client);
  let r: ProcessingResponse;
  try {
    c.send(w.headersMsg(i));
    await c.next(TIMEOUT_MS);
    c.send({ request_body: { body: w.body(i), end_of_stream: true } });
    r = await c.next(TIMEOUT_MS);
  } catch (e) {
    c.call.cancel();
    throw e;
  }
  const t1 = performance.now();
  if (destinationOf(r).header === undefined) throw new Error(`request ${i}: no destination (${JSON.stringify(r.immediate_response?.details ?? r)})`);
  void c.end();
  return { sched: t1 - scheduled, sent: t1 - t0 };
}

const withObjects = process.env['KVMGR_BENCH_CLIENT'] === 'objects';

/** Sends a phase's request `k` (scheduled at `scheduled`, ms on the performance clock). */
type Requester = (k: number, scheduled: number) => Promise<Sample>;

/** Requests `start …` of a phase: encoded now for the first `prepared`, then encoded when sent. */
function requester(client: grpc.Client, w: Workload, start: number, prepared: number): Requester {
  if (withObjects) return (k, scheduled) => oneWithObjects(client, start + k, w, scheduled);
  const ready = w.prepare(start, prepared);
  return (k, scheduled) => one(client, start + k, ready[k] ?? w.encode(start + k), scheduled);
}

/** Open loop: `rate` req/s for `seconds` (rate × seconds requests; 30 s extra at most). */
async function openLoop(send: Requester, rate: number, seconds: number): Promise<{ samples: Sample[]; errors: number; achieved: number; firstError?: string }> {
  const total = Math.round(rate * seconds);
  const samples: Sample[] = [];
  let errors = 0;
  let firstError: string | undefined;
  const inflight = new Set<Promise<void>>();
  const t0 = performance.now();
  let sent = 0;
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate) + 1);
    while (sent < due) {
      const scheduled = t0 + (sent * 1000) / rate;
      const p: Promise<void> = send(sent++, scheduled).then(
        (s) => {
          samples.push(s);
        },
        (e: Error) => {
          errors++;
          firstError ??= e.message;
        },
      );
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
    }
    // sleep until the next request is due (1 ms at least: timers have no finer grain)
    await new Promise((r) => setTimeout(r, Math.max(1, t0 + (sent * 1000) / rate - performance.now())));
    if (performance.now() - t0 > (seconds + 30) * 1000) break;
  }
  await Promise.race([Promise.all(inflight), new Promise((r) => setTimeout(r, 30_000).unref())]);
  const wall = (performance.now() - t0) / 1000;
  return { samples, errors, achieved: samples.length / wall, ...(firstError === undefined ? {} : { firstError }) };
}

/** `conc` streams back to back for `seconds`. */
async function closedLoop(send: Requester, conc: number, seconds: number): Promise<{ rps: number; p50: number; p99: number; errors: number }> {
  const end = performance.now() + seconds * 1000;
  const lat: number[] = [];
  let errors = 0;
  let next = 0;
  await Promise.all(
    Array.from({ length: conc }, async () => {
      while (performance.now() < end) {
        try {
          lat.push((await send(next++, performance.now())).sent);
        } catch {
          errors++;
        }
      }
    }),
  );
  lat.sort((a, b) => a - b);
  return { rps: lat.length / seconds, p50: quantile(lat, 0.5), p99: quantile(lat, 0.99), errors };
}

const f = (x: number) => x.toFixed(3);

/** The picker's GC pauses in the last phase: `minor count/total ms/max ms; major …`. */
function gcText(): string {
  const g = (x: GcPauses) => `${x.n}/${x.ms.toFixed(0)}/${x.max.toFixed(1)}`;
  return `${g(pickerGc.minor)}; ${g(pickerGc.major)}`;
}

/** This process's CPU time so far (user + system), µs. */
function clientCpuUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

function report(label: string, r: { samples: Sample[]; errors: number; achieved: number; firstError?: string }, cpuUs: number, clientUs: number): { p99: number } {
  const a = r.samples.map((s) => s.sched).sort((x, y) => x - y);
  const b = r.samples.map((s) => s.sent).sort((x, y) => x - y);
  const n = r.samples.length + r.errors;
  const perReq = (us: number) => (n === 0 ? Number.NaN : us / 1000 / n);
  console.log(`| ${label} | ${r.samples.length} | ${r.achieved.toFixed(0)} | ${f(quantile(a, 0.5))} | ${f(quantile(a, 0.9))} | ${f(quantile(a, 0.99))} | ${f(a[a.length - 1] ?? Number.NaN)} | ${f(quantile(b, 0.5))} | ${f(quantile(b, 0.99))} | ${f(perReq(cpuUs))} | ${f(perReq(clientUs))} | ${gcText()} | ${r.errors}${r.firstError === undefined ? '' : ` (${r.firstError})`} |`);
  return { p99: quantile(a, 0.99) };
}

async function main(): Promise<void> {
  const rate = Number(process.argv[2] ?? 1000);
  const seconds = Number(process.argv[3] ?? 10);
  const promptWords = Number(process.argv[4] ?? 600);
  if (!(rate > 0 && rate <= 10_000) || !(seconds > 0 && seconds <= 60) || !(promptWords >= 1 && promptWords <= 20_000)) throw new Error('rate in (0, 10000], seconds in (0, 60], promptWords in [1, 20000]');
  const picker = await spawnPicker();
  const client = new (loadEppProtos().extProc)(picker.address, grpc.credentials.createInsecure());
  try {
    const w = new Workload(promptWords);
    const info = readRequest('chat', JSON.parse(w.body(0).toString()), {}, 64);
    const tokens = info.ok ? info.info.promptTokens : Number.NaN;
    console.log(`${process.env['KVMGR_BENCH_PICKER'] === 'null' ? 'transport floor (KVMGR_BENCH_PICKER=null)' : 'picker'} at ${picker.address}; node ${process.version}; ${cpus().length} CPUs, load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}; prompts: 64 conversations, ${w.body(0).length} bytes of JSON, ${tokens} prompt tokens each; client: ${withObjects ? 'message objects per request (KVMGR_BENCH_CLIENT=objects)' : 'messages encoded ahead of each phase'}`);
    // warm-up: JIT, the connection, and one pass over every conversation (the index learns them)
    const warm = await openLoop(requester(client, w, 0, 400), 200, 2);
    if (warm.samples.length === 0) throw new Error(`warm-up failed: ${warm.firstError}`);
    let next = 1_000_000;
    let send = requester(client, w, next, 3000);
    await pickerProfile(picker.proc, 'start');
    let cpu0 = await pickerCpuUs(picker.proc);
    let own0 = clientCpuUs();
    const seq = await closedLoop(send, 1, 3);
    let own1 = clientCpuUs();
    next += 1_000_000;
    let cpu1 = await pickerCpuUs(picker.proc);
    await pickerProfile(picker.proc, 'stop', 'one-at-a-time');
    console.log(
      `one stream at a time, 3 s: ${seq.rps.toFixed(0)} req/s, p50 ${f(seq.p50)} ms, p99 ${f(seq.p99)} ms (the service time on this machine now); CPU per request: picker ${f((cpu1 - cpu0) / 1000 / (seq.rps * 3))} ms, client ${f((own1 - own0) / 1000 / (seq.rps * 3))} ms; picker GC pauses (count/total ms/max ms) minor ${gcText().replace('; ', ', major ')}`,
    );
    console.log('\n| phase | requests | achieved req/s | p50 ms (sched) | p90 | p99 | max | p50 ms (sent) | p99 (sent) | picker CPU ms/req | client CPU ms/req | picker GC minor; major (count/total ms/max ms) | errors |');
    console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
    // rising steps; the ceiling is the last step the picker sustains. After the first step it
    // cannot sustain, only `rate` itself is still run (when not run yet), then the steps stop.
    // KVMGR_BENCH_STEPS=300,600 runs those steps only (all of them), for A/B comparisons at fixed rates
    const fixed = process.env['KVMGR_BENCH_STEPS']?.split(',').map(Number);
    if (fixed?.some((x) => !(x > 0 && x <= 10_000))) throw new Error(`KVMGR_BENCH_STEPS: expected comma-separated rates in (0, 10000], got ${process.env['KVMGR_BENCH_STEPS']}`);
    const steps = fixed ?? [...new Set([rate / 40, rate / 20, rate / 10, rate / 4, rate / 2, rate, rate * 1.5, rate * 2, rate * 3, rate * 4].map(Math.round))].filter((x) => x > 0);
    let ceiling = 0;
    let failed = false;
    for (const step of steps) {
      if (failed && step !== rate && fixed === undefined) continue;
      send = requester(client, w, next, Math.round(step * seconds));
      await pickerProfile(picker.proc, 'start');
      cpu0 = await pickerCpuUs(picker.proc);
      own0 = clientCpuUs();
      const r = await openLoop(send, step, seconds);
      own1 = clientCpuUs();
      next += 1_000_000;
      cpu1 = await pickerCpuUs(picker.proc);
      await pickerProfile(picker.proc, 'stop', `open-${step}`);
      const { p99 } = report(`open loop ${step} req/s`, r, cpu1 - cpu0, own1 - own0);
      const kept = r.errors === 0 && r.achieved >= 0.95 * step && p99 <= KEPT_P99_MS;
      if (kept && !failed) ceiling = step;
      if (!kept) failed = true;
      if (failed && step >= rate && fixed === undefined) break;
    }
    console.log(`\nhighest open-loop step sustained (no errors, achieved ≥ 95 % of offered, p99 ≤ ${KEPT_P99_MS} ms from the scheduled start): ${ceiling} req/s`);
    send = requester(client, w, next, 15_000);
    cpu0 = await pickerCpuUs(picker.proc);
    own0 = clientCpuUs();
    const c = await closedLoop(send, 32, 5);
    own1 = clientCpuUs();
    cpu1 = await pickerCpuUs(picker.proc);
    const n = c.rps * 5 + c.errors;
    console.log(`\nclosed loop, 32 concurrent streams, 5 s: ${c.rps.toFixed(0)} req/s, p50 ${f(c.p50)} ms, p99 ${f(c.p99)} ms, errors ${c.errors}; CPU per request: picker ${f((cpu1 - cpu0) / 1000 / n)} ms, client ${f((own1 - own0) / 1000 / n)} ms; picker GC ${gcText()}`);
    console.log(`load average at the end: ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  } finally {
    client.close();
    await stop(picker.proc);
  }
}

if (role !== undefined) await runChild();
else await main();
