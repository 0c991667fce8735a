/**
 * Capability-aware P/D pairing for heterogeneous clusters: once the router has chosen to
 * disaggregate a request and picked its prefill instance, the decode instance is the one whose
 * capability (`CapabilityDescriptor` from `@kvmgr/core`: GPU memory, GPU-to-GPU link) and latency
 * model (from its GPU's profile or roofline) give the earliest expected next token after the
 * prefill leg: the KV transfer, then the decode instance's queued prefill work, then one decode
 * step with the request in its batch. An instance without room for the prompt's KV is taken only
 * when none has room (then the one with the most free blocks).
 *
 * In the simulator a capability's `bandwidthBytesPerSec.gpu` (an entry no lower tier uses) is the
 * instance's GPU-to-GPU link for KV transfers (NVLink, or PCIe on cards without it): a P/D
 * transfer runs at the slowest of the cluster link and the two instances' links.
 */
import type { CapabilityDescriptor } from '@kvmgr/core';
import type { LatencyModel } from '../latency/types.js';
import type { PdLink } from './cluster-types.js';

/** What the pairing reads of one decode candidate now. */
export interface DecodeCandidateState {
  readonly capability: CapabilityDescriptor;
  readonly latency: LatencyModel;
  /** GPU blocks that can be allocated now (free + evictable cached), less transfers already headed there. */
  readonly freeBlocks: number;
  /** Sequences running there now. */
  readonly runningSeqs: number;
  /** Tokens of KV the running sequences hold (what a decode step reads), tokens. */
  readonly contextTokens: number;
  /** Prompt tokens queued there still to prefill, tokens. */
  readonly backlogTokens: number;
}

/**
 * Bandwidth of a P/D KV transfer between two instances, bytes/s: the slowest of the cluster link
 * and the instances' GPU-to-GPU links (`capability.bandwidthBytesPerSec.gpu`, when given).
 * @param linkBytesPerSec - the cluster link, bytes/s.
 */
export function pdBandwidth(linkBytesPerSec: number, a: CapabilityDescriptor | undefined, b: CapabilityDescriptor | undefined): number {
  return Math.min(linkBytesPerSec, a?.bandwidthBytesPerSec.gpu ?? Number.POSITIVE_INFINITY, b?.bandwidthBytesPerSec.gpu ?? Number.POSITIVE_INFINITY);
}

/**
 * Expected time from the end of the prefill leg until the decode instance emits the request's
 * next token, µs: transfer (base + prompt tokens × bytes per token / {@link pdBandwidth}) + its
 * queued prefill backlog as one step of its latency model + one decode step with the request
 * added to its batch.
 *
 * @param prefill - the prefill instance's capability.
 * @param d - the decode candidate.
 * @param promptTokens - tokens whose KV moves.
 * @param bytesPerToken - KV bytes per token (all layers).
 * @param link - the cluster link; `bytesPerSec` @default 25e9, `baseUs` @default 1000.
 */
export function expectedDecodeStartUs(prefill: CapabilityDescriptor, d: DecodeCandidateState, promptTokens: number, bytesPerToken: number, link: PdLink = {}): number {
  const bw = pdBandwidth(link.bytesPerSec ?? 25e9, prefill, d.capability);
  const transferUs = (link.baseUs ?? 1000) + ((promptTokens * bytesPerToken) / bw) * 1e6;
  const backlogUs =
    d.backlogTokens > 0
      ? d.latency.stepTimeUs({ prefillTokens: d.backlogTokens, decodeTokens: 0, numSeqs: 1, prefillAttnPairs: (d.backlogTokens * d.backlogTokens) / 2, decodeContextTokens: 0 })
      : 0;
  const seqs = d.runningSeqs + 1;
  const stepUs = d.latency.stepTimeUs({ prefillTokens: 0, decodeTokens: seqs, numSeqs: seqs, prefillAttnPairs: 0, decodeContextTokens: d.contextTokens + promptTokens });
  return transferUs + backlogUs + stepUs;
}

/**
 * Picks the decode instance for a disaggregated request (see the module comment).
 *
 * @param prefill - the prefill instance's capability.
 * @param candidates - decode-capable instances (non-empty).
 * @param promptTokens - prompt tokens (their KV moves).
 * @param bytesPerToken - KV bytes per token (all layers).
 * @param link - the cluster link.
 * @returns the position in `candidates`; ties go to the earlier one.
 */
export function pickDecodeByCapability(prefill: CapabilityDescriptor, candidates: readonly DecodeCandidateState[], promptTokens: number, bytesPerToken: number, link: PdLink = {}): number {
  const need = Math.ceil((promptTokens + 1) / prefill.blockSize);
  let best = -1;
  let bestCost = Number.POSITIVE_INFINITY;
  let roomiest = 0;
  let roomiestFree = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < candidates.length; i++) {
    const d = candidates[i] as DecodeCandidateState;
    if (d.freeBlocks > roomiestFree) {
      roomiestFree = d.freeBlocks;
      roomiest = i;
    }
    if (d.freeBlocks < need) continue;
    const cost = expectedDecodeStartUs(prefill, d, promptTokens, bytesPerToken, link);
    if (cost < bestCost) {
      bestCost = cost;
      best = i;
    }
  }
  return best >= 0 ? best : roomiest;
}
