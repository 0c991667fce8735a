/**
 * bench serve's connection cap (`maxConnections`): 12 requests due at once, at most 3
 * connections. A node:http server on 127.0.0.1 answers each request 20 ms after it arrived
 * (without the cap all 12 would be waiting there together): it sees at most 3 connections
 * (reused, keep-alive) and never more than 3 requests at once, every request completes, and
 * each request after the first 3 is sent only after an earlier one ended (its wait is schedule
 * delay, not hidden inside the HTTP client).
 */
import { type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runWorkload } from '../src/bench-serve/runner.js';
import type { BenchRequest } from '../src/bench-serve/workload.js';

const CAP = 3;
let server: Server;
let url = '';
let connections = 0;
let inFlight = 0;
let maxInFlight = 0;
const held = new Set<ServerResponse>();

beforeAll(async () => {
  server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      held.add(res);
      setTimeout(() => {
        held.delete(res);
        inFlight--;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ choices: [{ index: 0, text: ' ok', finish_reason: 'length' }], usage: { prompt_tokens: 4, completion_tokens: 1 } }));
      }, 20);
    });
  });
  server.on('connection', () => {
    connections++;
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  for (const r of held) r.destroy();
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

describe('bench serve connection cap', () => {
  it('sends at most maxConnections requests at once, on that many reused connections', async () => {
    const requests: BenchRequest[] = Array.from({ length: 12 }, (_, i) => ({ id: `c${i}`, stage: 0, atS: 0, promptTokens: 4, outputTokens: 1, prompt: () => [1, 2, 3, 4] }));
    const res = await runWorkload({ url, model: 'm', workload: { name: 'burst', requests, stages: [{ rate: 1 }] }, stream: false, maxConnections: CAP, requestTimeoutS: 60 });
    expect(res.records).toHaveLength(12);
    expect(res.records.filter((r) => r.error !== null)).toEqual([]);
    expect(res.unsent).toBe(0);
    expect(maxInFlight).toBeGreaterThan(0);
    expect(maxInFlight).toBeLessThanOrEqual(CAP);
    expect(connections).toBeLessThanOrEqual(CAP);
    const byStart = [...res.records].sort((a, b) => a.startS - b.startS);
    for (let i = CAP; i < byStart.length; i++) {
      const earliestEnd = Math.min(...byStart.slice(0, i).map((r) => r.endS));
      expect((byStart[i] as (typeof byStart)[number]).startS).toBeGreaterThanOrEqual(earliestEnd);
    }
    // all were due at 0: the later ones waited for a connection, and that wait is their schedule delay
    expect(byStart.slice(CAP).every((r) => r.startS > r.scheduledS)).toBe(true);
  });
});
