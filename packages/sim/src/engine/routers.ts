/**
 * Routers for the cluster: `@kvmgr/router` (presets `round-robin`, `kvmgr-default`,
 * `llm-d-default`, weight strings such as `pa:3,qd:2,kv:2`, or a config object), fed with the
 * blocks each simulated instance caches and evicts (the precise prefix index).
 */
import type { EngineSnapshot } from '@kvmgr/core';
import { type LatencyPredictor, ROUTER_PRESETS, type RouterConfig, createRouter, localKeysFromBlockIds } from '@kvmgr/router';
import type { SimRequest } from '../traces/types.js';
import type { SimRouter } from './cluster-types.js';

/** Options of {@link createSimRouter}. */
export interface SimRouterOptions {
  /** Instance ids, in cluster order. */
  readonly instanceIds: readonly string[];
  /** Tokens per routing block (the engine block, or the trace's hash block; see `routerKeyRatio`). */
  readonly blockSize: number;
  /** Seed of the router's PRNG. @default 0 */
  readonly seed?: number;
  /** Use the P/D decider (`routePd`) instead of `route`. @default false */
  readonly pd?: boolean;
  /** Latency predictor for the `predicted-latency` scorer and the P/D pair optimizer. */
  readonly predictor?: LatencyPredictor;
}

/**
 * Wraps a `@kvmgr/router` router for the simulator.
 *
 * @param config - preset name, weight string, YAML text or {@link RouterConfig}.
 * @param options - instance ids, block size, seed, P/D.
 * @returns a {@link SimRouter} whose block index is fed by the instances' KV caches.
 * @throws KvmgrError `KVMGR_BAD_CONFIG` for a bad router configuration.
 */
export function createSimRouter(config: string | RouterConfig, options: SimRouterOptions): SimRouter {
  const base: RouterConfig =
    typeof config === 'string' && !config.includes(':') && !config.includes('\n')
      ? { ...presetOf(config) }
      : typeof config === 'string'
        ? { strategy: 'scored', scorers: config }
        : config;
  const baseline = base.strategy === 'round-robin' || base.strategy === 'random';
  const router = createRouter({
    ...base,
    seed: options.seed ?? base.seed ?? 0,
    blockSize: options.blockSize,
    recordPredictions: false,
    // Baselines never read the block index: skip its speculative writes.
    ...(baseline ? { speculativeTtlMs: 0 } : {}),
  }, options.predictor === undefined ? {} : { predictor: options.predictor });
  const ids = options.instanceIds;
  const pos = new Map<string, number>();
  for (const [i, id] of ids.entries()) pos.set(id, i);
  const scored = router.config.strategy === 'scored';
  const index = router.index as unknown as {
    recordBlocks(id: string, keys: Uint32Array, tier: 'gpu', from: number, to: number): void;
    removeBlocks?(id: string, keys: Uint32Array, tier: 'gpu', from: number, to: number): void;
  };
  const name = typeof config === 'string' ? config : 'custom';
  const sim: SimRouter = {
    name,
    route(request: SimRequest, keys: Uint32Array, snapshots: readonly EngineSnapshot[], nowUs: number, localKeys?: Uint32Array) {
      const rr = { ...request, localKeys: localKeys ?? localKeysFromBlockIds(keys) };
      if (options.pd === true) {
        const d = router.routePd(rr, snapshots, nowUs);
        return { decode: pos.get(d.decode) ?? 0, prefill: d.disaggregated ? (pos.get(d.prefill) ?? -1) : -1 };
      }
      const d = router.route(rr, snapshots, nowUs);
      return { decode: d.position, prefill: -1 };
    },
  };
  if (scored) {
    const pair = new Uint32Array(2);
    sim.onKeyStored = (instance: number, hi: number, lo: number) => {
      pair[0] = hi;
      pair[1] = lo;
      index.recordBlocks(ids[instance] as string, pair, 'gpu', 0, 1);
    };
    if (typeof index.removeBlocks === 'function') {
      sim.onKeyRemoved = (instance: number, hi: number, lo: number) => {
        pair[0] = hi;
        pair[1] = lo;
        index.removeBlocks?.(ids[instance] as string, pair, 'gpu', 0, 1);
      };
    }
  }
  return sim;
}

function presetOf(name: string): RouterConfig {
  return ROUTER_PRESETS[name] ?? { strategy: 'scored', scorers: name };
}
