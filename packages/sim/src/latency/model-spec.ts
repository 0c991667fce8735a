/**
 * Model architecture facts the roofline model and the KV geometry need, parsed from a
 * HuggingFace `config.json` (nested `text_config` for multimodal checkpoints such as Llama 4).
 */
import { invalidArgument } from '@kvmgr/core';

/** Architecture of a decoder-only transformer. */
export interface ModelSpec {
  /** Model name (HuggingFace id when known). */
  readonly name: string;
  readonly numLayers: number;
  /** Hidden size. */
  readonly hidden: number;
  /** Query heads. */
  readonly numHeads: number;
  /** KV heads (GQA). */
  readonly numKvHeads: number;
  /** Head dimension. */
  readonly headDim: number;
  /** FFN intermediate size of a dense MLP or of one expert. */
  readonly ffn: number;
  /** Routed experts per MoE layer (0 = dense). */
  readonly numExperts: number;
  /** Experts each token uses. */
  readonly expertsPerToken: number;
  /** Shared experts per MoE layer (Llama 4: 1). */
  readonly sharedExperts: number;
  readonly vocab: number;
  /** Bytes per weight element (2 for bf16/fp16, 1 for FP8 checkpoints). */
  readonly weightBytes: number;
  /** Bytes per KV element. @default 2 */
  readonly kvBytes: number;
}

/** Dense parameters per layer (attention + MLP; for MoE, the attention part only). */
function attnParams(m: ModelSpec): number {
  return m.hidden * m.numHeads * m.headDim * 2 + 2 * m.hidden * m.numKvHeads * m.headDim;
}

/** Parameters one token activates, excluding the embedding and the LM head. */
export function activeParamsPerToken(m: ModelSpec): number {
  const mlp = 3 * m.hidden * m.ffn;
  const perLayer = attnParams(m) + (m.numExperts > 0 ? (m.expertsPerToken + m.sharedExperts) * mlp : mlp);
  return perLayer * m.numLayers;
}

/** Total weight parameters (all experts), excluding embedding and LM head. */
export function totalLayerParams(m: ModelSpec): number {
  const mlp = 3 * m.hidden * m.ffn;
  return (attnParams(m) + (m.numExperts > 0 ? (m.numExperts + m.sharedExperts) * mlp : mlp)) * m.numLayers;
}

/** KV bytes per token over all ranks. */
export function kvBytesPerToken(m: ModelSpec): number {
  return 2 * m.numLayers * m.numKvHeads * m.headDim * m.kvBytes;
}

function num(cfg: Record<string, unknown>, key: string, fallback?: number): number {
  const v = cfg[key];
  if (typeof v === 'number' && Number.isFinite(v) && v > 0) return v;
  if (fallback !== undefined) return fallback;
  throw invalidArgument(`config.${key}`, v, 'a positive number');
}

/**
 * Parses a HuggingFace `config.json` object into a {@link ModelSpec}.
 *
 * @param name - the model id to record.
 * @param config - the parsed JSON.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` naming the missing field.
 */
export function parseHfConfig(name: string, config: unknown): ModelSpec {
  if (typeof config !== 'object' || config === null) throw invalidArgument('config', config, 'a config.json object');
  const top = config as Record<string, unknown>;
  const cfg = (typeof top.text_config === 'object' && top.text_config !== null ? top.text_config : top) as Record<string, unknown>;
  const hidden = num(cfg, 'hidden_size');
  const numHeads = num(cfg, 'num_attention_heads');
  const numExperts = typeof cfg.num_local_experts === 'number' ? cfg.num_local_experts : 0;
  const quant = top.quantization_config as Record<string, unknown> | undefined;
  const fp8 = quant !== undefined || /fp8/i.test(name);
  return Object.freeze({
    name,
    numLayers: num(cfg, 'num_hidden_layers'),
    hidden,
    numHeads,
    numKvHeads: num(cfg, 'num_key_value_heads', numHeads),
    headDim: num(cfg, 'head_dim', hidden / numHeads),
    ffn: num(cfg, 'intermediate_size'),
    numExperts,
    expertsPerToken: numExperts > 0 ? num(cfg, 'num_experts_per_tok', 1) : 0,
    sharedExperts: numExperts > 0 && /llama4/i.test(String(cfg.model_type ?? top.model_type ?? '')) ? 1 : 0,
    vocab: num(cfg, 'vocab_size'),
    weightBytes: fp8 ? 1 : 2,
    kvBytes: 2,
  });
}

/** Built-in architectures (from the public HuggingFace configs). */
export const MODEL_SPECS: Readonly<Record<string, ModelSpec>> = Object.freeze({
  'meta-llama/Llama-3.1-8B-Instruct': Object.freeze({
    name: 'meta-llama/Llama-3.1-8B-Instruct',
    numLayers: 32,
    hidden: 4096,
    numHeads: 32,
    numKvHeads: 8,
    headDim: 128,
    ffn: 14336,
    numExperts: 0,
    expertsPerToken: 0,
    sharedExperts: 0,
    vocab: 128256,
    weightBytes: 2,
    kvBytes: 2,
  }),
  'meta-llama/Llama-3.1-70B-Instruct': Object.freeze({
    name: 'meta-llama/Llama-3.1-70B-Instruct',
    numLayers: 80,
    hidden: 8192,
    numHeads: 64,
    numKvHeads: 8,
    headDim: 128,
    ffn: 28672,
    numExperts: 0,
    expertsPerToken: 0,
    sharedExperts: 0,
    vocab: 128256,
    weightBytes: 2,
    kvBytes: 2,
  }),
  'Qwen/Qwen2.5-7B-Instruct': Object.freeze({
    name: 'Qwen/Qwen2.5-7B-Instruct',
    numLayers: 28,
    hidden: 3584,
    numHeads: 28,
    numKvHeads: 4,
    headDim: 128,
    ffn: 18944,
    numExperts: 0,
    expertsPerToken: 0,
    sharedExperts: 0,
    vocab: 152064,
    weightBytes: 2,
    kvBytes: 2,
  }),
});

/**
 * Looks up a built-in model by id or by its last path component, case-insensitively.
 * @throws KvmgrError `KVMGR_INVALID_ARGUMENT` listing the known models.
 */
export function getModelSpec(name: string): ModelSpec {
  const n = name.toLowerCase();
  for (const [id, spec] of Object.entries(MODEL_SPECS)) {
    const l = id.toLowerCase();
    if (l === n || l.endsWith(`/${n}`) || (n.includes('/') && l.endsWith(n.slice(n.lastIndexOf('/'))))) return spec;
  }
  throw invalidArgument('model', name, `one of ${Object.keys(MODEL_SPECS).join(', ')} (or pass a ModelSpec parsed from config.json)`);
}
