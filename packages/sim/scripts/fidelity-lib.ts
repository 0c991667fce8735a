/** Shared logic of scripts/fidelity.ts and scripts/calibrate.ts. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRng } from '@kvmgr/core';
import { type EngineProfile, type RooflineCalibration, VLLM_DEFAULT_PROFILE, getGpuSpec, parseHfConfig, resolveLatencyModel, runReplay } from '../src/index.js';
import type { SimRequest } from '../src/traces/types.js';
import { type LoadStage, parseStages, sharedPrefixStage } from '../src/workload/shared-prefix.js';

export const ROOT = join(import.meta.dirname, '../../../../shared/validation');

function parseCsv(text: string): Record<string, string>[] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let q = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (q) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') q = false;
      else cell += c;
    } else if (c === '"') q = true;
    else if (c === ',') {
      row.push(cell);
      cell = '';
    } else if (c === '\n') {
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
    } else if (c !== '\r') cell += c;
  }
  if (cell !== '' || row.length > 0) {
    row.push(cell);
    rows.push(row);
  }
  const head = rows[0] as string[];
  return rows.slice(1).filter((r) => r.length === head.length).map((r) => Object.fromEntries(head.map((h, i) => [h, r[i] as string])));
}

export const experiments: Record<string, string>[] = parseCsv(readFileSync(join(ROOT, 'experiments.csv'), 'utf8'));
const measured = parseCsv(readFileSync(join(ROOT, 'measured_latency.csv'), 'utf8'));
const stageDetails = parseCsv(readFileSync(join(ROOT, 'stage_details.csv'), 'utf8'));
const gpu = getGpuSpec('H100');

export interface Row {
  experiment: string;
  latency: string;
  recommended: boolean;
  measured: { ttft: number; itl: number; e2e: number };
  sim: { ttft: number; itl: number; e2e: number };
  err: { ttft: number; itl: number; e2e: number };
  requests: number;
  wallMs: number;
}

/** Replays the validation experiments (optionally filtered) and returns per-experiment errors. */
export function runFidelity(latencyChoice: 'auto' | 'roofline' | 'blis', filter?: string, calib?: Partial<RooflineCalibration>, quiet = false, onlyRecommended = false, include?: (name: string) => boolean): Row[] {
const out: Row[] = [];
for (const e of experiments) {
  const name = e.experiment as string;
  if (filter !== undefined && !name.includes(filter)) continue;
  if (onlyRecommended && e.recommended_for_fidelity !== 'true') continue;
  if (include !== undefined && !include(name)) continue;
  const m = (metric: string): number => Number(measured.find((r) => r.experiment === name && r.stage_index === '-1' && r.metric === metric)?.value_ms);
  const cfg = JSON.parse(readFileSync(join(ROOT, e.model_config as string), 'utf8'));
  const model = parseHfConfig(e.model as string, cfg);
  const tp = Number(e.tp);
  const latency = resolveLatencyModel(latencyChoice, model, gpu, tp, calib);
  const sd = stageDetails.find((r) => r.experiment === name && r.stage_index === '-1');
  const sys = Number(e.system_prompt_len);
  const q = Number(e.question_len);
  const promptTokens = Math.round(sd?.prompt_len_mean_tokens ? Number(sd.prompt_len_mean_tokens) : 1.05 * (sys + q));
  const outputTokens = Number(e.output_len);
  const shape = { systemTokens: Math.round(sys * 1.05), promptTokens, outputTokens, groups: 10, promptsPerGroup: 10, seed: 1 };
  const profile: EngineProfile = {
    ...VLLM_DEFAULT_PROFILE,
    name: 'vllm-0.15.1',
    description: 'vLLM defaults with the experiment limits',
    tokenBudget: Number(e.max_num_batched_tokens),
    maxSeqs: Number.parseInt(e.max_num_seqs as string, 10),
  };
  const cpuBlocks = (e.cpu_offload as string).startsWith('true') ? Number(e.cpu_kv_blocks) : 0;
  const stages: LoadStage[] = parseStages(e.stages as string);
  const rng = createRng(7);
  const run = (reqs: SimRequest[]) =>
    runReplay({ trace: reqs, model, gpu, tp, instances: 1, profile, latency, gpuBlocks: Number(e.total_kv_blocks), cpuBlocks, seed: 0, slo: {} });
  const t0 = performance.now();
  let all: SimRequest[] = [];
  let start = 0;
  let res: ReturnType<typeof run> | undefined;
  for (let s = 0; s < stages.length; s++) {
    all = all.concat(sharedPrefixStage(stages[s] as LoadStage, start, shape, `s${s}-`, rng));
    res = run(all);
    const end = Math.max(...res.requests.map((r) => r.finishMs));
    start = end * 1000 + 1e6;
  }
  const r = res as NonNullable<typeof res>;
  const ok = r.requests.filter((x) => x.rejectedReason === '');
  const mean = (f: (x: (typeof ok)[number]) => number): number => ok.reduce((a, x) => a + f(x), 0) / ok.length;
  const simT = mean((x) => x.ttftMs);
  const simE = mean((x) => x.e2eMs);
  const simI = (simE - simT) / (outputTokens - 1);
  const meas = { ttft: m('ttft_mean'), itl: m('itl_mean_server_tokens'), e2e: m('e2e_mean') };
  const err = (a: number, b: number): number => (a - b) / b;
  const row: Row = {
    experiment: name,
    latency: latency.name.replace(/^(blis|roofline):.*?(tp\d+)(\/v[\d.]+)?$/, (_x, k, tpx, v) => `${k} ${tpx}${v ?? ''}`),
    recommended: e.recommended_for_fidelity === 'true',
    measured: meas,
    sim: { ttft: simT, itl: simI, e2e: simE },
    err: { ttft: err(simT, meas.ttft), itl: err(simI, meas.itl), e2e: err(simE, meas.e2e) },
    requests: r.requests.length,
    wallMs: Math.round(performance.now() - t0),
  };
  out.push(row);
  if (!quiet) process.stderr.write(`${name}: ${row.latency} ttft ${(row.err.ttft * 100).toFixed(1)}% itl ${(row.err.itl * 100).toFixed(1)}% e2e ${(row.err.e2e * 100).toFixed(1)}% (${row.wallMs} ms)\n`);
}
  return out;
}

/** Median of numbers. */
export function median(xs: number[]): number {
  const a = [...xs].sort((x, y) => x - y);
  const n = a.length;
  return n === 0 ? Number.NaN : n % 2 ? (a[(n - 1) / 2] as number) : ((a[n / 2 - 1] as number) + (a[n / 2] as number)) / 2;
}
