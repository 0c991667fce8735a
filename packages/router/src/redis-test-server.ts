/**
 * Test support (not exported from the package): a real `redis-server` on a free loopback port,
 * without persistence, stopped (or killed and restarted on the same port) by its own handle.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { connect, createServer } from 'node:net';

/** A `redis-server` a test started. */
export interface RedisTestServer {
  readonly port: number;
  /** `redis://127.0.0.1:<port>`. */
  readonly url: string;
  /** Kills the server (SIGKILL, as a crash) and waits for it to exit. */
  kill(): Promise<void>;
  /** Starts it again on the same port (empty), and waits until it answers. */
  restart(): Promise<void>;
  /** Stops it for good. Idempotent. */
  stop(): Promise<void>;
}

/** A free TCP port on 127.0.0.1 (listen on 0, read it, close). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a !== null ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

async function pingOnce(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: '127.0.0.1', port });
    let buf = '';
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(500, () => done(false));
    sock.once('error', () => done(false));
    sock.once('connect', () => sock.write('PING\r\n'));
    sock.on('data', (d) => {
      buf += d.toString();
      if (buf.includes('\r\n')) done(buf.startsWith('+PONG'));
    });
  });
}

async function waitReady(port: number, child: ChildProcess, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}`);
    if (await pingOnce(port)) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`redis-server on port ${port} not ready after ${timeoutMs} ms`);
}

/**
 * Starts `redis-server --port N --save '' --appendonly no` on a free port and waits for PONG.
 * @param bin - the executable. @default '/usr/bin/redis-server'
 */
export async function startRedisServer(bin = '/usr/bin/redis-server'): Promise<RedisTestServer> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  const launch = async () => {
    const c = spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'], { stdio: 'ignore' });
    child = c;
    await waitReady(port, c, 10_000);
  };
  const kill = async () => {
    const c = child;
    child = undefined;
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      c.once('exit', () => resolve());
      c.kill('SIGKILL');
    });
  };
  await launch();
  return { port, url: `redis://127.0.0.1:${port}`, kill, restart: launch, stop: kill };
}

/** Test keys of a prompt made of block ids: two u32 words per block (hi = 7·id + 1, lo = id). */
export function keysOf(ids: readonly number[]): Uint32Array {
  const k = new Uint32Array(2 * ids.length);
  ids.forEach((id, i) => {
    k[2 * i] = 7 * id + 1;
    k[2 * i + 1] = id;
  });
  return k;
}
