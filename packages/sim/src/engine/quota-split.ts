/**
 * The quota allocator in the simulated engine: each instance's GPU KV blocks are split between
 * LLM (generate) and embedding requests by `@kvmgr/kv-pool`'s {@link QuotaAllocator}, rebalanced
 * every `intervalMs` of simulated time from what each kind holds and waits for, and enforced by
 * the engine core ({@link EngineCore.setBlockQuota}).
 *
 * Each round, per instance: a kind's demand is the blocks it holds plus the blocks its waiting
 * requests need; its urgency is the wait of its oldest waiting request over the TTFT target
 * (0 when none waits); its minimum is the larger of its configured floor and the blocks it holds
 * (so a quota never drops below what its requests hold: the quotas never over-commit the pool);
 * then one damped `rebalance` moves the quotas toward the targets and the engine enforces them.
 *
 * @see packages/kv-pool/src/quota-allocator.ts (water filling, damping)
 */
import { requireInRange, requirePositiveNumber } from '@kvmgr/core';
import type { EngineCore } from '@kvmgr/engine';
import { QuotaAllocator } from '@kvmgr/kv-pool';

/** Options of the LLM / embedding quota split (`ReplayOptions.quota`). All optional. */
export interface QuotaSplitOptions {
  /** Simulated time between rebalancing rounds, ms. @default 500 */
  readonly intervalMs?: number;
  /** Blocks always kept for LLM requests, as a fraction of the instance's GPU blocks. @default 0.25 */
  readonly llmMinFraction?: number;
  /** Blocks always kept for embedding requests, as a fraction of the instance's GPU blocks. @default 0.05 */
  readonly embeddingMinFraction?: number;
  /** Damping: most a quota moves per round, as a fraction of the blocks (`QuotaAllocator`'s `maxStepFraction`). @default 0.1 */
  readonly maxStepFraction?: number;
  /**
   * LLM share weight against the embedding's 1: blocks no demand claims are spread by weight, so
   * with the default 9 an idle embedding quota returns to about a tenth of what is spare (the LLM
   * prefix cache keeps the rest). @default 9
   */
  readonly llmWeight?: number;
}

/** One instance's quotas after a round. */
export interface QuotaSample {
  /** Round time, ms. */
  readonly tMs: number;
  /** Instance position. */
  readonly instance: number;
  /** The instance's GPU blocks (what the quotas split). */
  readonly totalBlocks: number;
  /** LLM quota, blocks. */
  readonly llmQuota: number;
  /** Embedding quota, blocks. */
  readonly embeddingQuota: number;
  /** Blocks LLM / embedding requests held at the round. */
  readonly llmHeld: number;
  readonly embeddingHeld: number;
  /** Demand reported (held + waiting), blocks. */
  readonly llmDemand: number;
  readonly embeddingDemand: number;
}

/** What a run with quotas reports. */
export interface QuotaReport {
  /** Rounds run (per instance). */
  readonly rounds: number;
  /** Instance-rounds in which the quotas moved (≥ 1 block). */
  readonly shifts: number;
  /** Σ |embedding quota change| over all instance-rounds, blocks. */
  readonly shiftedBlocks: number;
  /** Every instance's quotas after every round, in time order. */
  readonly timeline: readonly QuotaSample[];
  /** Instance-rounds where a kind held more than its quota or the quotas exceeded the pool (0 on a healthy run). */
  readonly overCommitted: number;
}

/** Checks quota options (the replay boundary). @throws KvmgrError `KVMGR_INVALID_ARGUMENT` naming the bad option. */
export function resolveQuotaSplit(o: QuotaSplitOptions): Required<QuotaSplitOptions> {
  const r = {
    intervalMs: requirePositiveNumber('quota.intervalMs', o.intervalMs ?? 500),
    llmMinFraction: requireInRange('quota.llmMinFraction', o.llmMinFraction ?? 0.25, 0, 1),
    embeddingMinFraction: requireInRange('quota.embeddingMinFraction', o.embeddingMinFraction ?? 0.05, 0, 1),
    maxStepFraction: requireInRange('quota.maxStepFraction', o.maxStepFraction ?? 0.1, Number.MIN_VALUE, 1),
    llmWeight: requireInRange('quota.llmWeight', o.llmWeight ?? 9, Number.MIN_VALUE, 1e6),
  };
  requireInRange('quota.llmMinFraction + quota.embeddingMinFraction', r.llmMinFraction + r.embeddingMinFraction, 0, 1);
  return r;
}

/** The per-instance quota allocators of a cluster run. */
export class QuotaSplit {
  /** Time of the next round, µs. */
  nextUs: number;
  private readonly intervalUs: number;
  private readonly allocators: QuotaAllocator[];
  private readonly floors: { llm: number; embedding: number }[];
  private readonly timeline: QuotaSample[] = [];
  private rounds = 0;
  private shifts = 0;
  private shiftedBlocks = 0;
  private overCommitted = 0;

  /**
   * @param cores - the instances' engine cores (their quotas are set at once: LLM all but the
   *   embedding floor).
   * @param options - see {@link QuotaSplitOptions}.
   * @param ttftMs - TTFT target the urgency is measured against, ms.
   * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for bad options.
   */
  constructor(
    private readonly cores: readonly EngineCore[],
    options: QuotaSplitOptions,
    private readonly ttftMs: number,
  ) {
    const o = resolveQuotaSplit(options);
    this.intervalUs = o.intervalMs * 1000;
    this.nextUs = this.intervalUs;
    this.floors = cores.map((c) => ({ llm: Math.floor(o.llmMinFraction * c.kv.numBlocks), embedding: Math.floor(o.embeddingMinFraction * c.kv.numBlocks) }));
    this.allocators = cores.map((c, i) => {
      const total = c.kv.numBlocks;
      const f = this.floors[i] as { llm: number; embedding: number };
      const a = new QuotaAllocator({
        totalBlocks: total,
        maxStepFraction: o.maxStepFraction,
        consumers: [
          { name: 'llm', minBlocks: f.llm, weight: o.llmWeight, initialBlocks: total - f.embedding },
          { name: 'embedding', minBlocks: f.embedding, initialBlocks: f.embedding },
        ],
      });
      c.setBlockQuota({ generate: a.quota('llm'), embed: a.quota('embedding') });
      return a;
    });
  }

  /** Runs one round at `nowUs` on every instance and schedules the next. */
  round(nowUs: number): void {
    this.rounds++;
    for (let i = 0; i < this.cores.length; i++) {
      const core = this.cores[i] as EngineCore;
      const a = this.allocators[i] as QuotaAllocator;
      const f = this.floors[i] as { llm: number; embedding: number };
      const total = a.totalBlocks;
      const u = core.blockUsage();
      const urgency = (oldestUs: number): number => (oldestUs < 0 ? 0 : Math.max(0, nowUs - oldestUs) / 1000 / this.ttftMs);
      const llmDemand = u.generate.heldBlocks + u.generate.waitingBlocks;
      const embDemand = u.embed.heldBlocks + u.embed.waitingBlocks;
      a.report('llm', { demandBlocks: llmDemand, urgency: urgency(u.generate.oldestWaitingArrivalUs) });
      a.report('embedding', { demandBlocks: embDemand, urgency: urgency(u.embed.oldestWaitingArrivalUs) });
      // what a kind holds is its floor: quotas shrink only into free blocks (Σ held ≤ total, so Σ min ≤ total)
      const minLlm = Math.max(u.generate.heldBlocks, Math.min(f.llm, total - u.embed.heldBlocks));
      const minEmb = Math.max(u.embed.heldBlocks, Math.min(f.embedding, total - minLlm));
      a.setBounds('llm', minLlm, total);
      a.setBounds('embedding', minEmb, total);
      const before = a.quota('embedding');
      const r = a.rebalance(nowUs);
      const llmQ = r.quotas['llm'] as number;
      const embQ = r.quotas['embedding'] as number;
      core.setBlockQuota({ generate: llmQ, embed: embQ });
      if (embQ !== before || (r.changes['llm'] as number) !== 0) this.shifts++;
      this.shiftedBlocks += Math.abs(embQ - before);
      if (u.generate.heldBlocks > llmQ || u.embed.heldBlocks > embQ || llmQ + embQ > total) this.overCommitted++;
      this.timeline.push({
        tMs: nowUs / 1000,
        instance: i,
        totalBlocks: total,
        llmQuota: llmQ,
        embeddingQuota: embQ,
        llmHeld: u.generate.heldBlocks,
        embeddingHeld: u.embed.heldBlocks,
        llmDemand,
        embeddingDemand: embDemand,
      });
    }
    this.nextUs = nowUs + this.intervalUs;
  }

  /** The report so far. */
  report(): QuotaReport {
    return { rounds: this.rounds, shifts: this.shifts, shiftedBlocks: this.shiftedBlocks, timeline: this.timeline, overCommitted: this.overCommitted };
  }
}
