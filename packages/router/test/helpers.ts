import type { EngineSnapshot, InstanceRole } from '@kvmgr/core';
import type { RouteRequest } from '../src/types.js';

/** A snapshot with zeros everywhere but what is given. */
export function snap(instanceId: string, fields: Partial<Omit<EngineSnapshot, 'instanceId'>> = {}): EngineSnapshot {
  return {
    instanceId,
    role: 'both' as InstanceRole,
    timeUs: 0,
    kvUtilization: 0,
    waiting: 0,
    running: 0,
    pendingTransferLatency: 0,
    kvThrashingRate: 0,
    prefixCacheQueries: 0,
    prefixCacheHits: 0,
    ...fields,
  };
}

/** A request with trace block ids (blockSize 16). */
export function req(requestId: string, blockKeys: number[], fields: Partial<RouteRequest> = {}): RouteRequest {
  return { requestId, arrivalUs: 0, promptTokens: blockKeys.length * 16, maxTokens: 16, blockKeys, ...fields };
}
