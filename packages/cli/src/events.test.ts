/**
 * `kvmgr events tail` as a user runs it (a child process on the sources) against a real
 * publisher in this process on 127.0.0.1; then a bad endpoint: one line, exit 2.
 */
import { spawn, spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { KvEventPublisher } from '@kvmgr/adapter-vllm';
import { afterAll, describe, expect, it } from 'vitest';

const BIN = resolve(import.meta.dirname, 'bin.ts');
const ARGS = ['--conditions=@kvmgr/source', '--import', 'tsx', BIN];
const pubs: KvEventPublisher[] = [];
afterAll(async () => {
  for (const p of pubs) await p.close();
});

describe('kvmgr events tail', () => {
  it('prints decoded events as JSON lines and exits after --count', async () => {
    const pub = await KvEventPublisher.create({ endpoint: 'tcp://127.0.0.1:0', replayEndpoint: 'tcp://127.0.0.1:0', bind: true });
    pubs.push(pub);
    const child = spawn(process.execPath, [...ARGS, 'events', 'tail', '--endpoint', pub.endpoint, '--replay', pub.replayEndpoint as string, '--json', '--count', '5'], {
      cwd: resolve(import.meta.dirname, '..'),
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => {
      out += b.toString();
    });
    child.stderr.on('data', (b: Buffer) => {
      err += b.toString();
    });
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    let running = true;
    void exited.then(() => {
      running = false;
    });
    // the child needs a moment to start and join: publish until it has what it asked for
    const deadline = Date.now() + 60_000;
    while (running && Date.now() < deadline) {
      await pub.publish([{ type: 'BlockStored', blockHashes: [0xdab89baa7b5857c0n], parentBlockHash: null, tokenIds: [1, 2, 3, 4], blockSize: 4, medium: 'GPU' }]);
      await new Promise((r) => setTimeout(r, 20));
    }
    if (running) child.kill('SIGKILL');
    expect(await exited, err).toBe(0);
    const lines = out.trim().split('\n');
    expect(lines).toHaveLength(5);
    const first = JSON.parse(lines[0] as string);
    expect(first.event).toMatchObject({ type: 'BlockStored', blockHashes: ['15760518052499183552'], tokenIds: [1, 2, 3, 4], medium: 'GPU' });
    expect(lines.map((l) => JSON.parse(l).seq)).toEqual([0, 1, 2, 3, 4]); // early ones came by replay
    expect(err).toMatch(/kvmgr events: 5 events/);
  });

  it('a bad endpoint is a one-line error with exit code 2', () => {
    const r = spawnSync(process.execPath, [...ARGS, 'events', 'tail', '--endpoint', 'tcp://nohost'], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^kvmgr: error: --endpoint must be tcp:\/\/HOST:PORT/);
  });
});
