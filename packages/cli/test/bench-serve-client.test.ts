/**
 * bench serve's client against a hand-written server on 127.0.0.1 (node:http): an SSE stream cut
 * at odd places (mid-event, mid-UTF-8 character), with CRLF line ends, comments and a keep-alive
 * ping, is read token by token; a server that never answers is a `Timeout` failure after
 * `requestTimeoutS` (the run's timeout sweep), and a stopped run aborts what is in flight.
 */
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runWorkload } from '../src/bench-serve/runner.js';
import type { BenchRequest } from '../src/bench-serve/workload.js';

const chunk = (text: string) => `data: ${JSON.stringify({ choices: [{ index: 0, text, finish_reason: null }] })}`;
// 5 tokens, the 3rd a two-byte character; CRLF events; a comment and an empty ping event between
const STREAM = Buffer.from(
  [chunk(' a'), chunk(' b'), chunk(' é'), ': keep-alive', chunk(' d'), chunk(' e'), `data: ${JSON.stringify({ choices: [], usage: { prompt_tokens: 4, completion_tokens: 5, prompt_tokens_details: { cached_tokens: 2 } } })}`, 'data: [DONE]']
    .map((e) => `${e}\r\n\r\n`)
    .join(''),
  'utf8',
);

let server: Server;
let url = '';
const hanging = new Set<import('node:http').ServerResponse>();
beforeAll(async () => {
  server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (String(req.headers['x-request-id']).startsWith('hang')) {
        hanging.add(res);
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      // cut inside the "é" (a 2-byte character) and inside events; each piece its own write, a tick apart
      const cuts = [7, STREAM.indexOf(Buffer.from('é')) + 1, 150, 151, 260, STREAM.indexOf(Buffer.from('\r\n\r\n', 'utf8'), 300) + 1].sort((a, b) => a - b);
      let at = 0;
      const next = () => {
        const c = cuts.shift();
        if (c === undefined) {
          res.end(STREAM.subarray(at));
          return;
        }
        res.write(STREAM.subarray(at, c));
        at = c;
        setTimeout(next, 2);
      };
      next();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  for (const r of hanging) r.destroy();
  await new Promise<void>((r) => server.close(() => r()));
});

const req = (id: string): BenchRequest => ({ id, stage: 0, atS: 0, promptTokens: 4, outputTokens: 5, prompt: () => [1000, 1001, 1002, 1003] });

describe('bench serve client', () => {
  it('reads an SSE stream cut anywhere, with CRLF, comments and pings, token by token', async () => {
    const res = await runWorkload({ url, model: 'm', workload: { name: 't', requests: [req('a'), req('b')], stages: [{ rate: 1 }] } });
    expect(res.records).toHaveLength(2);
    for (const r of res.records) {
      expect(r.error, JSON.stringify(r.error)).toBeNull();
      expect(r.text).toBe(' a b é d e');
      expect(r.chunkTimesS).toHaveLength(5);
      expect(r.outputTokens).toBe(5);
      expect(r.cachedTokens).toBe(2);
      expect([...r.chunkTimesS].sort((x, y) => x - y)).toEqual(r.chunkTimesS);
    }
  });

  it('a server that never answers: a Timeout failure after requestTimeoutS; the run completes', async () => {
    const res = await runWorkload({ url, model: 'm', workload: { name: 't', requests: [req('hang-1'), req('ok-1')], stages: [{ rate: 1 }] }, requestTimeoutS: 0.5 });
    const byId = new Map(res.records.map((r) => [r.id, r]));
    expect(byId.get('ok-1')?.error).toBeNull();
    expect(byId.get('hang-1')?.error?.error_type).toBe('Timeout');
    expect(byId.get('hang-1')?.error?.error_msg).toMatch(/no response within 0.5 s/);
    // loose sanity bound only: aborted by the sweep, not by the 600 s default
    expect(byId.get('hang-1')?.endS ?? 0).toBeLessThan(30);
  });

  it('a stopped run aborts what is in flight and sends nothing more', async () => {
    const stop = new AbortController();
    const requests = [req('hang-2'), ...Array.from({ length: 5 }, (_, i) => ({ ...req(`later-${i}`), atS: 30 + i }))];
    const run = runWorkload({ url, model: 'm', workload: { name: 't', requests, stages: [{ rate: 1 }] }, signal: stop.signal });
    setTimeout(() => stop.abort(), 200);
    const res = await run;
    expect(res.records.map((r) => r.id)).toEqual(['hang-2']);
    expect(res.records[0]?.error?.error_type).toBe('Timeout');
    expect(res.records[0]?.error?.error_msg).toMatch(/the run was stopped/);
    expect(res.unsent).toBe(5);
  });
});
