import type { EngineSnapshot } from '@kvmgr/core';
import { createRng } from '@kvmgr/core';
import { encodeText } from '@kvmgr/adapter-vllm';
import { KvBlockIndex, type RouteRequest, Router, localKeysFromTokens, namespaceRoot, parseRouterConfig } from '@kvmgr/router';
import type { BenchSuite } from '../../../bench/types.js';
import { type RoutableEndpoint, placeRequest } from '../src/decide.js';
import type { InFlight } from '../src/endpoint.js';

const ENDPOINTS = 16;
const PREFIXES = 8000;
const BLOCKS = 128; // 2,048-token prompts at block size 16
const MODEL = 'meta-llama/Llama-3.1-8B-Instruct';

/** An endpoint without sockets: a fixed scraped snapshot plus the in-flight bookkeeping the gateway does. */
class BenchEndpoint implements RoutableEndpoint {
  readonly healthy = true;
  readonly config = { role: 'both' };
  readonly inFlight = new Map<string, InFlight>();
  constructor(
    readonly name: string,
    private readonly snap: EngineSnapshot,
  ) {}
  freeTokens(): number {
    return 1 << 20;
  }
  routingSnapshot(nowUs: number): EngineSnapshot {
    let extra = 0;
    for (const _ of this.inFlight.values()) extra++;
    return extra === 0 ? this.snap : { ...this.snap, timeUs: nowUs, waiting: this.snap.waiting + extra };
  }
}

/**
 * The gateway's routing decision alone (no sockets, no tokenisation unless named): 16 endpoints,
 * a block index of ~1M keys (8,000 cached 2,048-token prompts, each on one endpoint's GPU and its
 * first half on a neighbour's CPU), `pa:3,qd:2,kv:2`, KV-fit filter on. Each call builds the 16
 * routing snapshots, routes, writes speculative entries and reserves the request in flight
 * (released right after, as a finished request would be). Peer: round-robin through the same path.
 */
export function createSuite(): BenchSuite {
  const rng = createRng(42);
  const index = new KvBlockIndex({ maxKeys: 1 << 20, namespace: { model: MODEL } });
  const root = namespaceRoot({ model: MODEL });
  const eps = Array.from(
    { length: ENDPOINTS },
    (_, i) =>
      new BenchEndpoint(`pod-${i}`, {
        instanceId: `pod-${i}`,
        role: 'both',
        timeUs: 0,
        kvUtilization: (i % 10) / 10,
        waiting: i % 5,
        running: 4 + (i % 7),
        pendingTransferLatency: 0,
        kvThrashingRate: 0,
        prefixCacheQueries: 0,
        prefixCacheHits: 0,
      }),
  );
  for (const e of eps) index.addInstance(e.name);
  const requestTokens: Uint32Array[] = [];
  for (let p = 0; p < PREFIXES; p++) {
    const tokens = new Uint32Array(BLOCKS * 16);
    for (let i = 0; i < tokens.length; i++) tokens[i] = Math.floor(rng.next() * 128000);
    const keys = localKeysFromTokens(tokens, 16, root);
    index.recordBlocks(`pod-${p % ENDPOINTS}`, keys, 'gpu');
    index.recordBlocks(`pod-${(p + 1) % ENDPOINTS}`, keys, 'cpu', 0, BLOCKS / 2);
    if (p % 31 === 0 && requestTokens.length < 256) requestTokens.push(tokens);
  }
  // requests: a cached 2,048-token prompt, half of them with a fresh second half
  const requests: RouteRequest[] = requestTokens.map((base, r) => {
    const tokens = Uint32Array.from(base);
    if (r % 2 === 1) for (let i = tokens.length / 2; i < tokens.length; i++) tokens[i] = Math.floor(rng.next() * 128000);
    return { requestId: `r${r}`, arrivalUs: 0, promptTokens: tokens.length, maxTokens: 128, localKeys: localKeysFromTokens(tokens, 16, root) };
  });
  const withTokens: RouteRequest[] = requests.map((r, i) => ({ requestId: r.requestId, arrivalUs: 0, promptTokens: 2048, maxTokens: 128, promptTokenIds: requestTokens[i] as Uint32Array }));
  const kv = new Router({ ...parseRouterConfig('pa:3,qd:2,kv:2'), model: MODEL }, { index });
  const rr = new Router({ ...parseRouterConfig('round-robin'), model: MODEL }, { index });
  const none = new Set<string>();
  const text = 'The quick brown fox jumps over the lazy dog. '.repeat(200); // ~2,000 tokens
  let n = 0;
  let sink = 0;
  const decide = (router: Router, req: RouteRequest) => {
    const p = placeRequest(router, eps, req, 2176, none, true, n * 1000);
    if (typeof p === 'object') {
      sink += p.decision.position;
      p.endpoint.inFlight.delete(req.requestId);
    }
  };
  return {
    name: 'gateway',
    notes: { indexKeys: index.size, endpoints: ENDPOINTS, blocksPerRequest: BLOCKS, tokensInTokenizerCase: encodeText(text).length },
    cases: [
      { name: 'decision round-robin, 16 endpoints (peer: same path, no scoring)', fn: () => decide(rr, requests[n++ & 255] as RouteRequest), latencySamples: 20000 },
      {
        name: 'decision pa:3,qd:2,kv:2, 16 endpoints, 1M-key index, keys given',
        fn: () => decide(kv, requests[n++ & 255] as RouteRequest),
        baseline: 'decision round-robin, 16 endpoints (peer: same path, no scoring)',
        latencySamples: 20000,
      },
      { name: 'decision pa:3,qd:2,kv:2, 16 endpoints, 1M-key index, 2,048 token ids hashed', fn: () => decide(kv, withTokens[n++ & 255] as RouteRequest), latencySamples: 20000 },
      // adapter-vllm's encodeText caches segments and pre-tokens (exact); the library from scratch is its tokenizer bench's peer
      { name: 'tokenise the same ~2,000-token prompt again (llama3, cached segment)', fn: () => void (sink += encodeText(text).length), latencySamples: 2000 },
      { name: 'tokenise a new ~2,000-token prompt (llama3, cached pre-tokens)', fn: () => void (sink += encodeText(`${n++} ${text}`).length), latencySamples: 500 },
    ],
  };
}
