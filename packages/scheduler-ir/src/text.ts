/**
 * The IR's text form: JSON with a fixed key order that parses back losslessly
 * (`parseState(printState(s))` deep-equals `s`). Parsing validates every field.
 */
import {
  KvmgrError,
  invalidArgument,
  requireNonNegativeInt,
  requireNonNegativeNumber,
  requireOneOf,
  requirePositiveInt,
} from '@kvmgr/core';
import type { Budgets, KvView, PlanOp, SchedRequest, SchedState, StepPlan, StepRole, TierBlocks } from './ir.js';
import type { StepIR } from './step-ir.js';

const STATUSES = ['waiting', 'running', 'preempted', 'swapped'] as const;
const ROLES = ['prefill', 'decode', 'both'] as const;

function requestJson(r: SchedRequest): Record<string, unknown> {
  const o: Record<string, unknown> = {
    id: r.id,
    status: r.status,
    promptTokens: r.promptTokens,
    computedTokens: r.computedTokens,
    cachedPrefixTokens: r.cachedPrefixTokens,
    generatedTokens: r.generatedTokens,
    maxTokens: r.maxTokens,
    priority: r.priority,
    arrivalUs: r.arrivalUs,
    admittedUs: r.admittedUs,
    blocksHeld: r.blocksHeld,
  };
  if (r.ttftMs !== undefined) o.ttftMs = r.ttftMs;
  if (r.tpotMs !== undefined) o.tpotMs = r.tpotMs;
  if (r.firstTokenUs !== undefined && r.firstTokenUs >= 0) o.firstTokenUs = r.firstTokenUs;
  if (r.predictedRemainingTokens !== undefined) o.predictedRemainingTokens = r.predictedRemainingTokens;
  if (r.predictedRemainingP90 !== undefined) o.predictedRemainingP90 = r.predictedRemainingP90;
  return o;
}

/**
 * Prints a state as JSON (two-space indent, requests one per line).
 * @param state - the step's input.
 */
export function printState(state: SchedState): string {
  const reqs = (rs: SchedRequest[]): string => (rs.length === 0 ? '[]' : `[\n${rs.map((r) => `    ${JSON.stringify(requestJson(r))}`).join(',\n')}\n  ]`);
  return [
    '{',
    `  "nowUs": ${JSON.stringify(state.nowUs)},`,
    ...(state.role !== undefined ? [`  "role": ${JSON.stringify(state.role)},`] : []),
    `  "budgets": ${JSON.stringify({ tokenBudget: state.budgets.tokenBudget, maxSeqs: state.budgets.maxSeqs })},`,
    `  "kv": ${JSON.stringify({ blockSize: state.kv.blockSize, freeBlocks: tiers(state.kv.freeBlocks), totalBlocks: tiers(state.kv.totalBlocks), evictablePrefixBlocks: state.kv.evictablePrefixBlocks })},`,
    `  "running": ${reqs(state.running)},`,
    `  "waiting": ${reqs(state.waiting)}`,
    '}',
  ].join('\n');
}

function tiers(t: TierBlocks): TierBlocks {
  return { gpu: t.gpu, cpu: t.cpu, disk: t.disk };
}

function obj(field: string, v: unknown): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw invalidArgument(field, v, 'an object');
  return v as Record<string, unknown>;
}

function parseTiers(field: string, v: unknown): TierBlocks {
  const o = obj(field, v);
  return {
    gpu: requireNonNegativeInt(`${field}.gpu`, o.gpu),
    cpu: requireNonNegativeInt(`${field}.cpu`, o.cpu ?? 0),
    disk: requireNonNegativeInt(`${field}.disk`, o.disk ?? 0),
  };
}

function parsePriority(field: string, v: unknown): number {
  if (v === undefined) return 0;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw invalidArgument(field, v, 'a finite number');
  return v;
}

function parseRequest(field: string, v: unknown): SchedRequest {
  const o = obj(field, v);
  if (typeof o.id !== 'string' || o.id === '') throw invalidArgument(`${field}.id`, o.id, 'a non-empty string');
  const promptTokens = requirePositiveInt(`${field}.promptTokens`, o.promptTokens);
  const r: SchedRequest = {
    id: o.id,
    status: requireOneOf(`${field}.status`, o.status, STATUSES),
    promptTokens,
    computedTokens: requireNonNegativeInt(`${field}.computedTokens`, o.computedTokens ?? 0),
    cachedPrefixTokens: requireNonNegativeInt(`${field}.cachedPrefixTokens`, o.cachedPrefixTokens ?? 0),
    generatedTokens: requireNonNegativeInt(`${field}.generatedTokens`, o.generatedTokens ?? 0),
    maxTokens: requirePositiveInt(`${field}.maxTokens`, o.maxTokens),
    priority: parsePriority(`${field}.priority`, o.priority),
    arrivalUs: requireNonNegativeNumber(`${field}.arrivalUs`, o.arrivalUs),
    admittedUs: o.admittedUs === undefined || o.admittedUs === -1 ? -1 : requireNonNegativeNumber(`${field}.admittedUs`, o.admittedUs),
    blocksHeld: requireNonNegativeInt(`${field}.blocksHeld`, o.blocksHeld ?? 0),
  };
  if (r.computedTokens > r.promptTokens + r.generatedTokens) {
    throw invalidArgument(`${field}.computedTokens`, r.computedTokens, `at most promptTokens + generatedTokens (${r.promptTokens + r.generatedTokens})`);
  }
  if (o.ttftMs !== undefined) r.ttftMs = requireNonNegativeNumber(`${field}.ttftMs`, o.ttftMs);
  if (o.tpotMs !== undefined) r.tpotMs = requireNonNegativeNumber(`${field}.tpotMs`, o.tpotMs);
  if (o.firstTokenUs !== undefined) r.firstTokenUs = requireNonNegativeNumber(`${field}.firstTokenUs`, o.firstTokenUs);
  if (o.predictedRemainingTokens !== undefined) r.predictedRemainingTokens = requireNonNegativeNumber(`${field}.predictedRemainingTokens`, o.predictedRemainingTokens);
  if (o.predictedRemainingP90 !== undefined) r.predictedRemainingP90 = requireNonNegativeNumber(`${field}.predictedRemainingP90`, o.predictedRemainingP90);
  return r;
}

/**
 * Parses and validates a state printed by {@link printState} (or hand-written JSON of that shape;
 * omitted counters default to 0, `cpu`/`disk` tiers to 0).
 * @throws KvmgrError `KVMGR_BAD_CONFIG` for malformed JSON (cause attached);
 *   `KVMGR_INVALID_ARGUMENT` naming the bad field (e.g. `waiting[3].promptTokens`).
 */
export function parseState(text: string): SchedState {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new KvmgrError('KVMGR_BAD_CONFIG', `state text is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  const o = obj('state', raw);
  const b = obj('state.budgets', o.budgets);
  const budgets: Budgets = { tokenBudget: requirePositiveInt('state.budgets.tokenBudget', b.tokenBudget), maxSeqs: requirePositiveInt('state.budgets.maxSeqs', b.maxSeqs) };
  const k = obj('state.kv', o.kv);
  const kv: KvView = {
    blockSize: requirePositiveInt('state.kv.blockSize', k.blockSize),
    freeBlocks: parseTiers('state.kv.freeBlocks', k.freeBlocks),
    totalBlocks: parseTiers('state.kv.totalBlocks', k.totalBlocks),
    evictablePrefixBlocks: requireNonNegativeInt('state.kv.evictablePrefixBlocks', k.evictablePrefixBlocks ?? 0),
  };
  const list = (name: 'waiting' | 'running'): SchedRequest[] => {
    const v = o[name] ?? [];
    if (!Array.isArray(v)) throw invalidArgument(`state.${name}`, v, 'an array');
    return v.map((x, i) => parseRequest(`state.${name}[${i}]`, x));
  };
  const state: SchedState = { nowUs: requireNonNegativeNumber('state.nowUs', o.nowUs), waiting: list('waiting'), running: list('running'), kv, budgets };
  if (o.role !== undefined) state.role = requireOneOf('state.role', o.role, ROLES) as StepRole;
  return state;
}

/** Prints a plan as JSON (ops one per line). */
export function printPlan(plan: StepPlan): string {
  const { ops, ...rest } = plan;
  return `{\n  "summary": ${JSON.stringify(rest)},\n  "ops": ${ops.length === 0 ? '[]' : `[\n${ops.map((op) => `    ${JSON.stringify(op)}`).join(',\n')}\n  ]`}\n}`;
}

/**
 * Parses a plan printed by {@link printPlan}.
 * @throws KvmgrError `KVMGR_BAD_CONFIG` for malformed JSON or a wrong shape.
 */
export function parsePlan(text: string): StepPlan {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new KvmgrError('KVMGR_BAD_CONFIG', `plan text is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  const o = obj('plan', raw);
  const summary = obj('plan.summary', o.summary);
  if (!Array.isArray(o.ops)) throw new KvmgrError('KVMGR_BAD_CONFIG', 'plan.ops must be an array');
  return { ...(summary as Omit<StepPlan, 'ops'>), ops: o.ops as PlanOp[] };
}

/** Prints the step IR between passes (`--print-ir-after-all`): order, decisions, attributes, ops so far. */
export function printStepIR(ir: StepIR): string {
  const s = ir.state;
  const decisions: Record<string, string> = {};
  for (let w = 0; w < ir.nW; w++) if (ir.wDecision[w] !== 0) decisions[s.waiting[w]!.id] = ir.wReason[w] ?? '';
  const attrs: Record<string, unknown> = {
    tokenBudget: ir.tokenBudget,
    maxSeqs: ir.maxSeqs,
    chunking: ir.chunking,
    longPrefillTokens: ir.longPrefillTokens,
    phase: ir.phase,
    preemption: ir.preemption,
    admitAfterPreempt: ir.admitAfterPreempt,
  };
  if (ir.admission) attrs.admission = ir.admission;
  const reserve: Record<string, number> = {};
  for (let w = 0; w < ir.nW; w++) if ((ir.wReserve[w] as number) > 0) reserve[s.waiting[w]!.id] = ir.wReserve[w] as number;
  if (Object.keys(reserve).length > 0) attrs.reserveBlocks = reserve;
  return JSON.stringify(
    {
      op: 'sched.step',
      waitingOrder: ir.waitingOrder().map((w) => s.waiting[w]!.id),
      runningOrder: ir.runningOrder().map((i) => s.running[i]!.id),
      decisions,
      attributes: attrs,
      materialized: ir.materialized,
      ops: ir.toPlan().ops,
    },
    null,
    2,
  );
}
