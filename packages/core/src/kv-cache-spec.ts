/**
 * KV cache geometry: how many bytes one token and one block of KV take, per tier.
 *
 * bytes per token = numLayers × numKvHeads × headDim × kvFactor × dtype bytes, where
 * kvFactor is 2 (separate K and V) or 1 (MLA's joint latent, e.g. DeepSeek-V3).
 * Llama-3.1-8B fp16 (32 layers, 8 KV heads, head dim 128): 131,072 B/token, 2 MiB per
 * 16-token block.
 *
 * @see vllm-project/vllm:vllm/v1/kv_cache_interface.py (`AttentionSpec.page_size_bytes`)
 */
import { KvmgrError, invalidArgument } from './errors.js';
import { requirePositiveInt } from './validate.js';

/** Storage tiers, fastest first. */
export type Tier = 'gpu' | 'cpu' | 'disk';

/** All tiers, fastest first. */
export const TIERS: readonly Tier[] = Object.freeze(['gpu', 'cpu', 'disk'] as const);

/** Element types of KV tensors, with their width in bits (see {@link DTYPE_BITS}). */
export type KVDtype = 'fp32' | 'fp16' | 'bf16' | 'fp8' | 'fp8_e4m3' | 'fp8_e5m2' | 'int8' | 'int4';

/** Bits per element of each {@link KVDtype}. */
export const DTYPE_BITS: Readonly<Record<KVDtype, number>> = Object.freeze({
  fp32: 32,
  fp16: 16,
  bf16: 16,
  fp8: 8,
  fp8_e4m3: 8,
  fp8_e5m2: 8,
  int8: 8,
  int4: 4,
});

/** What the caller gives to {@link createKVCacheSpec}. */
export interface KVCacheSpecInput {
  /** Tokens per block (a page). @default 16 */
  blockSize?: number;
  /** Transformer layers holding KV. */
  numLayers: number;
  /** KV heads per layer (after GQA; per tensor-parallel rank if sharded). */
  numKvHeads: number;
  /** Head dimension (elements). */
  headDim: number;
  /** Element type in GPU memory. @default 'fp16' */
  dtype?: KVDtype;
  /** 2 for separate K and V tensors, 1 for a joint latent (MLA). @default 2 */
  kvFactor?: 1 | 2;
  /** Element type per lower tier when it differs from `dtype` (e.g. a quantised CPU copy). */
  tierDtypes?: Partial<Record<Tier, KVDtype>>;
}

/** Validated, frozen KV cache geometry with derived byte sizes. */
export interface KVCacheSpec {
  readonly blockSize: number;
  readonly numLayers: number;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly dtype: KVDtype;
  readonly kvFactor: 1 | 2;
  /** Element type per tier (every tier present). */
  readonly tierDtypes: Readonly<Record<Tier, KVDtype>>;
  /** Bytes of KV one token takes on the GPU tier. */
  readonly bytesPerToken: number;
  /** Bytes of one block (`blockSize` tokens) on the GPU tier. */
  readonly bytesPerBlock: number;
  /** Bytes of one token per tier. */
  readonly bytesPerTokenByTier: Readonly<Record<Tier, number>>;
  /** Bytes of one block per tier. */
  readonly bytesPerBlockByTier: Readonly<Record<Tier, number>>;
}

function requireDtype(field: string, value: unknown): KVDtype {
  if (typeof value !== 'string' || !Object.hasOwn(DTYPE_BITS, value)) {
    throw invalidArgument(field, value, `one of ${Object.keys(DTYPE_BITS).join(', ')}`);
  }
  return value as KVDtype;
}

function tokenBytes(input: { numLayers: number; numKvHeads: number; headDim: number; kvFactor: number }, dtype: KVDtype, field: string): number {
  const bits = input.numLayers * input.numKvHeads * input.headDim * input.kvFactor * DTYPE_BITS[dtype];
  if (bits % 8 !== 0) {
    throw invalidArgument(field, dtype, 'a dtype that gives a whole number of bytes per token');
  }
  return bits / 8;
}

/**
 * Validates a KV geometry and derives its byte sizes.
 *
 * @param input - layers, KV heads, head dim, dtype, block size (tokens, default 16).
 * @returns a frozen {@link KVCacheSpec}.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` naming the field (`spec.numLayers`, …) when a
 *   count is zero, negative or not an integer, or a dtype is unknown.
 */
export function createKVCacheSpec(input: KVCacheSpecInput): KVCacheSpec {
  if (typeof input !== 'object' || input === null) throw invalidArgument('spec', input, 'an object');
  const blockSize = requirePositiveInt('spec.blockSize', input.blockSize ?? 16);
  const numLayers = requirePositiveInt('spec.numLayers', input.numLayers);
  const numKvHeads = requirePositiveInt('spec.numKvHeads', input.numKvHeads);
  const headDim = requirePositiveInt('spec.headDim', input.headDim);
  const dtype = requireDtype('spec.dtype', input.dtype ?? 'fp16');
  const kvFactor = input.kvFactor ?? 2;
  if (kvFactor !== 1 && kvFactor !== 2) throw invalidArgument('spec.kvFactor', kvFactor, '1 or 2');
  const tierDtypes = { gpu: dtype, cpu: dtype, disk: dtype } as Record<Tier, KVDtype>;
  for (const [tier, d] of Object.entries(input.tierDtypes ?? {})) {
    if (!(TIERS as readonly string[]).includes(tier)) throw invalidArgument('spec.tierDtypes', tier, 'a tier: gpu, cpu or disk');
    tierDtypes[tier as Tier] = requireDtype(`spec.tierDtypes.${tier}`, d);
  }
  const geometry = { numLayers, numKvHeads, headDim, kvFactor };
  const bytesPerTokenByTier = {} as Record<Tier, number>;
  const bytesPerBlockByTier = {} as Record<Tier, number>;
  for (const tier of TIERS) {
    const b = tokenBytes(geometry, tierDtypes[tier], tier === 'gpu' ? 'spec.dtype' : `spec.tierDtypes.${tier}`);
    bytesPerTokenByTier[tier] = b;
    bytesPerBlockByTier[tier] = b * blockSize;
  }
  return Object.freeze({
    blockSize,
    numLayers,
    numKvHeads,
    headDim,
    dtype,
    kvFactor,
    tierDtypes: Object.freeze(tierDtypes),
    bytesPerToken: bytesPerTokenByTier.gpu,
    bytesPerBlock: bytesPerBlockByTier.gpu,
    bytesPerTokenByTier: Object.freeze(bytesPerTokenByTier),
    bytesPerBlockByTier: Object.freeze(bytesPerBlockByTier),
  });
}

/**
 * Blocks needed to hold `tokens` tokens (ceil division).
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` when `tokens` is not a non-negative integer.
 */
export function blocksForTokens(tokens: number, blockSize: number): number {
  if (!Number.isSafeInteger(tokens) || tokens < 0) throw invalidArgument('tokens', tokens, 'a non-negative integer');
  return Math.ceil(tokens / blockSize);
}

/** How the blocks of one cache are laid out: the geometry plus capacity per tier. */
export interface KVCacheSchema {
  readonly spec: KVCacheSpec;
  /** Capacity in blocks per tier (0 = tier absent). */
  readonly numBlocks: Readonly<Record<Tier, number>>;
  /** Attention groups sharing the block table (one full-attention group for most models). */
  readonly groups: readonly KVCacheGroup[];
}

/** One group of layers that share a block table (vLLM's `KVCacheGroupSpec`). */
export interface KVCacheGroup {
  readonly name: string;
  /** Layer indices in the group. */
  readonly layers: readonly number[];
  readonly attention: 'full' | 'sliding-window' | 'mla';
  /** Window in tokens for sliding-window attention. */
  readonly slidingWindowTokens?: number;
}

/**
 * Sizes a cache: blocks per tier = floor(memory bytes of the tier / bytes per block of the tier).
 *
 * @param spec - the geometry.
 * @param memoryBytes - bytes reserved for KV per tier; missing tiers get 0 blocks.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` for a negative or non-finite byte count.
 */
export function createKVCacheSchema(spec: KVCacheSpec, memoryBytes: Partial<Record<Tier, number>>): KVCacheSchema {
  const numBlocks = { gpu: 0, cpu: 0, disk: 0 } as Record<Tier, number>;
  for (const tier of TIERS) {
    const bytes = memoryBytes[tier] ?? 0;
    if (typeof bytes !== 'number' || !Number.isFinite(bytes) || bytes < 0) {
      throw invalidArgument(`memoryBytes.${tier}`, bytes, 'a finite number of bytes >= 0');
    }
    numBlocks[tier] = Math.floor(bytes / spec.bytesPerBlockByTier[tier]);
  }
  const layers = Array.from({ length: spec.numLayers }, (_, i) => i);
  return Object.freeze({
    spec,
    numBlocks: Object.freeze(numBlocks),
    groups: Object.freeze([Object.freeze({ name: 'full', layers, attention: spec.kvFactor === 1 ? 'mla' : 'full' } as const)]),
  });
}

/** Role of an engine instance in a cluster. */
export type InstanceRole = 'both' | 'prefill' | 'decode' | 'embedding';

/** Kind of device an instance computes on (`sim` for the simulator). */
export type DeviceKind = 'cuda' | 'rocm' | 'ascend' | 'cpu' | 'sim';

/**
 * What an engine instance can do: role, device, memory and bandwidth per tier. Routers and
 * the simulator read it; adapters fill it from engine config (`vllm:cache_config_info`).
 */
export interface CapabilityDescriptor {
  readonly instanceId: string;
  readonly role: InstanceRole;
  readonly model: string;
  readonly device: { readonly kind: DeviceKind; readonly name: string; readonly count: number };
  /** Bytes of KV memory per tier. */
  readonly memoryBytes: Readonly<Partial<Record<Tier, number>>>;
  /** Transfer bandwidth to/from the GPU tier, bytes per second, per lower tier. */
  readonly bandwidthBytesPerSec: Readonly<Partial<Record<Tier, number>>>;
  /** Tokens per block of the engine. */
  readonly blockSize: number;
  /** Max tokens per engine step (chunked-prefill budget). */
  readonly maxBatchedTokens: number;
  /** Max sequences per engine step. */
  readonly maxNumSeqs: number;
}

/**
 * Checks a capability descriptor at a boundary (config file, adapter).
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` naming the bad field.
 */
export function validateCapability(c: CapabilityDescriptor): CapabilityDescriptor {
  if (typeof c.instanceId !== 'string' || c.instanceId.length === 0) throw invalidArgument('capability.instanceId', c.instanceId, 'a non-empty string');
  const roles: readonly InstanceRole[] = ['both', 'prefill', 'decode', 'embedding'];
  if (!roles.includes(c.role)) throw invalidArgument('capability.role', c.role, `one of ${roles.join(', ')}`);
  requirePositiveInt('capability.blockSize', c.blockSize);
  requirePositiveInt('capability.maxBatchedTokens', c.maxBatchedTokens);
  requirePositiveInt('capability.maxNumSeqs', c.maxNumSeqs);
  for (const [tier, bytes] of Object.entries(c.memoryBytes)) {
    if (typeof bytes !== 'number' || !(bytes >= 0)) throw invalidArgument(`capability.memoryBytes.${tier}`, bytes, 'bytes >= 0');
  }
  if (!Number.isSafeInteger(c.device.count) || c.device.count < 1) throw new KvmgrError('KVMGR_INVALID_ARGUMENT', `capability.device.count must be a positive integer, got ${c.device.count}`);
  return c;
}
