/**
 * Reads a folder in the `shared/validation` layout (real vLLM runs packaged for replay):
 * `experiments.csv` (engine config, hardware, workload spec), `measured_latency.csv` (long
 * format, ms), optional `stage_details.csv` (measured prompt lengths) and the `model_configs/`
 * the experiments name. See `shared/validation/README.md` ("Replaying one experiment").
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { KvmgrError } from '@kvmgr/core';
import { type LoadStage, parseStages } from '../workload/shared-prefix.js';
import { gpuKey } from './gpu-spec.js';

/** Mean TTFT, mean ITL (per server token) and mean E2E of a whole run, ms. */
export interface LatencyTriple {
  readonly ttft: number;
  readonly itl: number;
  readonly e2e: number;
}

/** One experiment of a validation folder, parsed. */
export interface ValidationExperiment {
  readonly name: string;
  /** HuggingFace id as the CSV writes it. */
  readonly model: string;
  /** Path of its `config.json`, relative to the folder. */
  readonly modelConfig: string;
  /** The CSV's GPU name, e.g. `H100-80GB-HBM3 (SXM)`, `A100-80GB`, `L40S-48GB`. */
  readonly gpu: string;
  /** Key of `GPU_SPECS` for {@link gpu}, undefined when unknown. */
  readonly gpuKey: string | undefined;
  readonly tp: number;
  /** Data-parallel replicas (blank = 1). */
  readonly dp: number;
  /** vLLM version, e.g. `0.15.1`. */
  readonly vllmVersion: string;
  readonly maxNumBatchedTokens: number;
  readonly maxNumSeqs: number;
  readonly blockSize: number;
  /** Fraction of GPU memory vLLM may use. @default 0.9 */
  readonly gpuMemoryUtilization: number;
  readonly cpuOffload: boolean;
  readonly cpuKvBlocks: number;
  /** GPU KV blocks vLLM reported; undefined when the CSV cell is blank (derive from memory). */
  readonly totalKvBlocks: number | undefined;
  readonly systemPromptLen: number;
  readonly questionLen: number;
  readonly outputLen: number;
  /** Measured mean prompt length (tokens) when `stage_details.csv` has it. */
  readonly promptLenMeanTokens: number | undefined;
  readonly stages: readonly LoadStage[];
  readonly recommended: boolean;
  /** Whole-run measurements (NaN where missing). */
  readonly measured: LatencyTriple;
}

/** A parsed validation folder. */
export interface ValidationSet {
  readonly dir: string;
  readonly experiments: readonly ValidationExperiment[];
}

/** RFC 4180 CSV → one object per row keyed by the header (rows of the wrong width are dropped). */
export function parseCsv(text: string): Record<string, string>[] {
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
  const head = rows[0] ?? [];
  return rows
    .slice(1)
    .filter((r) => r.length === head.length)
    .map((r) => Object.fromEntries(head.map((h, i) => [h, r[i] as string])));
}

/** Leading number of a cell such as `0.9 (vLLM default, unverified)`; `fallback` when blank. */
function leadingNumber(cell: string | undefined, fallback: number): number {
  const m = /^\s*([0-9]+(?:\.[0-9]+)?)/.exec(cell ?? '');
  return m === null ? fallback : Number(m[1]);
}

function readCsv(dir: string, file: string, required: boolean): Record<string, string>[] {
  const path = join(dir, file);
  if (!existsSync(path)) {
    if (!required) return [];
    throw new KvmgrError('KVMGR_NOT_FOUND', `validation folder ${dir}: missing ${file}`, { details: { path } });
  }
  return parseCsv(readFileSync(path, 'utf8'));
}

/**
 * Loads a validation folder.
 *
 * @param dir - the folder (`experiments.csv` and `measured_latency.csv` required).
 * @returns every experiment row, in file order.
 * @throws KvmgrError `KVMGR_NOT_FOUND` naming the path when the folder or a required file is
 *   missing; `KVMGR_INVALID_ARGUMENT` for a malformed `stages` cell.
 */
export function loadValidationSet(dir: string): ValidationSet {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new KvmgrError('KVMGR_NOT_FOUND', `validation folder ${dir}: no such directory`, { details: { path: dir } });
  }
  const rows = readCsv(dir, 'experiments.csv', true);
  const measured = readCsv(dir, 'measured_latency.csv', true);
  const details = readCsv(dir, 'stage_details.csv', false);
  const run = new Map<string, number>();
  for (const m of measured) if (m.stage_index === '-1') run.set(`${m.experiment}\u0000${m.metric}`, Number(m.value_ms));
  const get = (name: string, metric: string): number => run.get(`${name}\u0000${metric}`) ?? Number.NaN;
  const experiments = rows.map((e): ValidationExperiment => {
    const name = e.experiment ?? '';
    const sd = details.find((r) => r.experiment === name && r.stage_index === '-1');
    const kv = (e.total_kv_blocks ?? '').trim();
    const itlServer = get(name, 'itl_mean_server_tokens');
    return {
      name,
      model: e.model ?? '',
      modelConfig: e.model_config ?? '',
      gpu: e.gpu ?? '',
      gpuKey: gpuKey(e.gpu ?? ''),
      tp: leadingNumber(e.tp, 1),
      dp: leadingNumber(e.dp, 1),
      vllmVersion: /^[0-9.]+/.exec(e.vllm_version ?? '')?.[0]?.replace(/\.$/, '') ?? '',
      maxNumBatchedTokens: leadingNumber(e.max_num_batched_tokens, 8192),
      maxNumSeqs: leadingNumber(e.max_num_seqs, 256),
      blockSize: leadingNumber(e.block_size, 16),
      gpuMemoryUtilization: leadingNumber(e.gpu_memory_utilization, 0.9),
      cpuOffload: (e.cpu_offload ?? '').startsWith('true'),
      cpuKvBlocks: leadingNumber(e.cpu_kv_blocks, 0),
      totalKvBlocks: kv === '' ? undefined : leadingNumber(kv, 0),
      systemPromptLen: leadingNumber(e.system_prompt_len, 0),
      questionLen: leadingNumber(e.question_len, 0),
      outputLen: leadingNumber(e.output_len, 1),
      promptLenMeanTokens: sd?.prompt_len_mean_tokens ? Number(sd.prompt_len_mean_tokens) : undefined,
      stages: parseStages(e.stages ?? ''),
      recommended: e.recommended_for_fidelity === 'true',
      measured: {
        ttft: get(name, 'ttft_mean'),
        itl: Number.isFinite(itlServer) ? itlServer : get(name, 'itl_mean'),
        e2e: get(name, 'e2e_mean'),
      },
    };
  });
  return { dir, experiments };
}
