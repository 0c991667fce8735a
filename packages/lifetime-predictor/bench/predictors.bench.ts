import type { LifetimePredictor } from '@kvmgr/core';
import type { BenchCase, BenchSuite } from '../../../bench/types.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { sharedDir } from '../../../scripts/shared-data.js';
import { LstmPredictor, createPredictor, listPredictors, loadTrace } from '../src/index.js';

/**
 * Predictor micro-benchmarks on the Mooncake conversation trace: each predictor is trained on
 * the first 4,000 requests, then `predict` / `predictRemaining` cycle over the next ones
 * (per-call p50/p99 via `latencySamples`), and `observe` keeps learning (amortised retraining
 * included for gbdt; the LSTM's tfjs training is timed once and recorded in the notes). The
 * peer for the LSTM's hand-written forward pass is tfjs's own `model.predict`. The trace is read
 * from the shared data folder (`$KVMGR_SHARED/traces`, else `../shared/traces` beside the
 * repository).
 * @throws Error naming the path when the trace is absent
 */
export function createSuite(): BenchSuite {
  const path = join(sharedDir(), 'traces', 'mooncake_fast25_conversation_trace.jsonl');
  if (!existsSync(path)) throw new Error(`lifetime-predictor bench: no trace at ${path} (set KVMGR_SHARED to the folder holding traces/)`);
  const records = loadTrace(path);
  const train = records.slice(0, 4000);
  const test = records.slice(4000);
  const cases: BenchCase[] = [];
  const notes: Record<string, number | string> = {};
  // results accumulate here so the JIT cannot drop the calls
  const sink = { value: 0 };
  const trained: Record<string, LifetimePredictor> = {};
  for (const name of listPredictors()) {
    const p = createPredictor(name);
    for (const r of train) p.observe(r.features, r.actualOutputTokens);
    trained[name] = p;
    let i = 0;
    cases.push({
      name: `predict ${name}`,
      fn: () => {
        const r = test[i++ % test.length];
        if (r !== undefined) sink.value += p.predict(r.features).p90;
      },
      latencySamples: 5000,
      ...(name === 'global-median' ? {} : { baseline: 'predict global-median' }),
    });
  }
  for (const name of ['quantile', 'gbdt', 'lstm']) {
    const p = trained[name] as LifetimePredictor;
    let i = 0;
    cases.push({
      name: `predictRemaining ${name}`,
      fn: () => {
        const r = test[i++ % test.length];
        if (r !== undefined) sink.value += p.predictRemaining(r.features, 100).p90;
      },
      latencySamples: 5000,
    });
  }
  for (const name of ['global-median', 'ewma', 'quantile', 'gbdt']) {
    const p = createPredictor(name);
    for (const r of train) p.observe(r.features, r.actualOutputTokens);
    let i = 0;
    cases.push({
      name: `observe ${name}`,
      fn: () => {
        const r = test[i++ % test.length];
        if (r !== undefined) p.observe(r.features, r.actualOutputTokens);
      },
    });
  }
  // LSTM observe without training (retrainEvery beyond the run), and one timed retraining
  const lstm = new LstmPredictor({ retrainEvery: 1e9, minTrain: 256 });
  for (const r of train) lstm.observe(r.features, r.actualOutputTokens);
  const t0 = performance.now();
  lstm.retrain();
  notes['lstm retrain ms (40 Adam steps, batch 64)'] = Math.round(performance.now() - t0);
  let j = 0;
  cases.push({
    name: 'observe lstm (no retrain)',
    fn: () => {
      const r = test[j++ % test.length];
      if (r !== undefined) lstm.observe(r.features, r.actualOutputTokens);
    },
  });
  const lp = trained.lstm as LstmPredictor;
  let k = 0;
  cases.push({
    name: 'lstm forward tfjs model.predict (peer)',
    fn: () => {
      const r = test[k++ % test.length];
      if (r !== undefined) sink.value += lp.forwardTfjs(r.features);
    },
    latencySamples: 300,
  });
  cases.push({
    name: 'lstm forward hand-written',
    fn: () => {
      const r = test[k++ % test.length];
      if (r !== undefined) sink.value += lp.forwardHandWritten(r.features);
    },
    latencySamples: 5000,
    baseline: 'lstm forward tfjs model.predict (peer)',
  });
  return { name: 'lifetime-predictor', cases, notes };
}
