/**
 * `kvmgr list <what>`: what the CLI accepts, one line each, read from the packages' own
 * registries (never a hand-kept copy): models and GPUs of the latency model, engine profiles,
 * scheduler-IR passes and presets, router scorers (with the weight letters `pa`, `qd`, `kv`, …),
 * eviction policies and output-length predictors.
 */
import { KvmgrError } from '@kvmgr/core';
import { EVICTION_POLICY_NAMES } from '@kvmgr/eviction';
import { listPredictors } from '@kvmgr/lifetime-predictor';
import { SCORER_ALIASES, SCORER_NAMES } from '@kvmgr/router';
import { BUILTIN_PASSES, PRESETS } from '@kvmgr/scheduler-ir';
import { ENGINE_PROFILES, GPU_SPECS, MODEL_SPECS } from '@kvmgr/sim';

/** The lists `kvmgr list` prints. */
export const LIST_KINDS = ['models', 'gpus', 'profiles', 'passes', 'presets', 'scorers', 'policies', 'predictors'] as const;
/** One of {@link LIST_KINDS}. */
export type ListKind = (typeof LIST_KINDS)[number];

/** One row: a name and a one-line description. */
export interface ListRow {
  readonly name: string;
  readonly description: string;
}

/** What each scorer measures (router's `scorers.ts` formulas), for `kvmgr list scorers`. */
const SCORER_DESCRIPTIONS: Readonly<Record<string, string>> = {
  'prefix-affinity': 'tier-weighted consecutive cached blocks / prompt blocks, from the KV-event block index',
  'approx-prefix': 'consecutive blocks this router sent to the instance before / prompt blocks (no KV events needed)',
  'queue-depth': 'fewer waiting requests scores higher (min-max over candidates)',
  'kv-utilization': '1 - KV cache usage',
  'load-aware': "llm-d's load-aware: 0.5 with an empty queue, falling to 0 at `threshold` waiting requests",
  'active-requests': 'fewer running + waiting requests scores higher',
  'no-hit-lru': "llm-d's no-hit-lru: on a cache miss, prefer the least recently used instance",
  'kv-pressure': '1 - (KV usage + pending KV transfer time + thrashing rate), floored at 0',
  'kv-pressure-slo': 'kv-pressure with the transfer penalty weighted by the request SLO class',
  'predicted-latency': 'predicted TTFT (uncached prefill + queue) against the TTFT SLO, or min-max inverse without one',
};

const EVICTION_DESCRIPTIONS: Readonly<Record<string, string>> = {
  lru: 'least recently used',
  lfu: 'least frequently used (ties by recency)',
  arc: 'adaptive replacement cache: recency and frequency lists with ghost histories (Megiddo & Modha, FAST 2003)',
  s3fifo: 'small + main FIFO queues with a ghost queue (Yang et al., SOSP 2023)',
  sieve: 'FIFO with a visited bit and a moving hand (Zhang et al., NSDI 2024)',
  gdsf: 'greedy-dual size frequency: cost x frequency / size, aged',
  predictive: 'learned reuse classes over block features; evicts the class least likely to be reused soon',
  adaptive: 'follows whichever of LRU, LFU, ARC, GDSF, S3-FIFO, predictive leads in sampled shadow simulations (LeCaR / CACHEUS style)',
  belady: "offline optimum (needs the future access sequence): the bound, not a policy to run",
};

const PREDICTOR_DESCRIPTIONS: Readonly<Record<string, string>> = {
  constant: 'always the same output length',
  'global-median': 'median output length seen so far (the baseline every learned model must beat)',
  ewma: 'exponentially weighted mean per key',
  quantile: 'streaming quantiles per key',
  gbdt: 'gradient-boosted trees over request features, trained online',
  lstm: 'small recurrent model over request features (@tensorflow/tfjs)',
  auto: 'serves the learned model only while its recent error beats the global median, else the median',
};

function rows(kind: ListKind): ListRow[] {
  switch (kind) {
    case 'models':
      return Object.values(MODEL_SPECS).map((m) => ({
        name: m.name,
        description: `${m.numLayers} layers, ${m.numKvHeads} KV heads x ${m.headDim}`,
      }));
    case 'gpus':
      return Object.entries(GPU_SPECS).map(([key, g]) => ({
        name: key,
        description: `${g.name}: ${(g.memoryBytes / 1e9).toFixed(0)} GB, ${(g.hbmBytesPerSec / 1e12).toFixed(2)} TB/s, BF16 ${(g.bf16Flops / 1e12).toFixed(0)} TFLOPS`,
      }));
    case 'profiles':
      return Object.values(ENGINE_PROFILES).map((p) => ({ name: p.name, description: p.description }));
    case 'passes':
      return BUILTIN_PASSES.map((p) => ({ name: p.argument, description: p.summary }));
    case 'presets':
      return Object.entries(PRESETS).map(([name, text]) => ({ name, description: text }));
    case 'scorers': {
      const letters = new Map<string, string>();
      for (const [alias, name] of Object.entries(SCORER_ALIASES)) letters.set(name, alias);
      return SCORER_NAMES.map((name) => ({
        name: letters.has(name) ? `${name} (${letters.get(name)})` : name,
        description: SCORER_DESCRIPTIONS[name] ?? '',
      }));
    }
    case 'policies':
      return EVICTION_POLICY_NAMES.map((name) => ({ name, description: EVICTION_DESCRIPTIONS[name] ?? '' }));
    case 'predictors':
      return listPredictors().map((name) => ({ name, description: PREDICTOR_DESCRIPTIONS[name] ?? '' }));
  }
}

/**
 * The rows of one list.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` naming the kind and the known kinds.
 */
export function listRows(kind: string): ListRow[] {
  if (!(LIST_KINDS as readonly string[]).includes(kind)) {
    throw new KvmgrError('KVMGR_INVALID_ARGUMENT', `unknown list ${JSON.stringify(kind)}; expected one of ${LIST_KINDS.join(', ')}`);
  }
  return rows(kind as ListKind);
}

/** Prints one list: `name  description`, names padded to one column; `--json` prints the rows. */
export function runList(kind: string, opts: { json?: boolean }, out: (text: string) => void = (t) => process.stdout.write(t)): void {
  const list = listRows(kind);
  if (opts.json) {
    out(`${JSON.stringify(list, null, 2)}\n`);
    return;
  }
  const width = Math.max(...list.map((r) => r.name.length));
  for (const r of list) out(`${r.description ? `${r.name.padEnd(width)}  ${r.description}` : r.name}\n`);
}
