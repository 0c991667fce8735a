/**
 * Prefill/decode disaggregation the way vLLM's KV connectors (NIXL) expose it through
 * `kv_transfer_params`: the prefill leg (`do_remote_decode: true`) runs the prompt, produces one
 * token and answers with where its blocks are (`do_remote_prefill`, `remote_engine_id`,
 * `remote_block_ids`, `remote_host`, `remote_port`); the decode leg (`do_remote_prefill: true`)
 * first waits for the KV transfer — blocks × bytes per block / link bandwidth + base latency, on
 * the model clock — then joins the engine with the KV of all prompt tokens but the last as remote
 * KV (`EngineRequest.remoteKv`): GPU blocks are allocated for it without computing it, the last
 * prompt token is computed and decoding starts, as on a vLLM decode instance.
 *
 * @see vllm-project/vllm:vllm/distributed/kv_transfer/kv_connector/v1/nixl_connector.py
 */
import { type KvTransferParams, type OpenAiErrorResponse, openAiError } from '@kvmgr/adapter-vllm';
import type { EngineCore, RequestFinishedStats } from '@kvmgr/engine';
import type { GenerationRequest } from './openai-requests.js';

/** P/D options of an engine server. */
export interface PdOptions {
  /** `prefill` honours only `do_remote_decode`, `decode` only `do_remote_prefill`, `both` either. @default 'both' */
  readonly role?: 'both' | 'prefill' | 'decode';
  /** KV link bandwidth, GB/s (10^9 bytes/s). @default 25 (a 200 Gb/s RDMA NIC) */
  readonly linkGBps?: number;
  /** Fixed cost of one transfer, µs (model clock). @default 100 */
  readonly baseLatencyUs?: number;
  /** `remote_engine_id` this engine reports. @default 'kvmgr-<host>-<port>' */
  readonly engineId?: string;
}

/** P/D behaviour of one server. */
export class PdRole {
  readonly role: 'both' | 'prefill' | 'decode';
  private readonly linkBytesPerUs: number;
  private readonly baseUs: number;
  private readonly bytesPerBlock: number;
  private readonly blockSize: number;
  private readonly host: string;
  private engineId: string | undefined;
  private port = 0;
  private readonly blocks = new Map<string, number[]>();

  constructor(options: PdOptions, geometry: { bytesPerBlock: number; blockSize: number; host: string }) {
    this.role = options.role ?? 'both';
    this.linkBytesPerUs = (options.linkGBps ?? 25) * 1e3;
    this.baseUs = options.baseLatencyUs ?? 100;
    this.bytesPerBlock = geometry.bytesPerBlock;
    this.blockSize = geometry.blockSize;
    this.host = geometry.host;
    this.engineId = options.engineId;
  }

  /** The listening port, once known. */
  setPort(port: number): void {
    this.port = port;
    this.engineId ??= `kvmgr-${this.host}-${port}`;
  }

  /** 400 when the request asks for a leg this role does not serve. */
  check(req: GenerationRequest): OpenAiErrorResponse | null {
    const p = req.kvTransferParams;
    if (p?.do_remote_decode && this.role === 'decode') return openAiError(400, 'kv_transfer_params.do_remote_decode: this engine has the decode role', { param: 'kv_transfer_params' });
    if (p?.do_remote_prefill && this.role === 'prefill') return openAiError(400, 'kv_transfer_params.do_remote_prefill: this engine has the prefill role', { param: 'kv_transfer_params' });
    return null;
  }

  /** The prefill leg generates exactly one token (as vLLM's P/D proxy asks with `max_tokens: 1`). */
  adjust(req: GenerationRequest): GenerationRequest {
    return req.kvTransferParams?.do_remote_decode ? { ...req, maxTokens: 1, minTokens: 0 } : req;
  }

  /** Model µs of the KV transfer a decode leg waits for (0 otherwise). */
  transferDelayUs(req: GenerationRequest): number {
    const p = req.kvTransferParams;
    if (!p?.do_remote_prefill) return 0;
    const ids = p.remote_block_ids;
    const n = Array.isArray(ids) && ids.length > 0 ? (Array.isArray(ids[0]) ? (ids[0] as number[]).length : ids.length) : Math.ceil(req.promptTokenIds.length / this.blockSize);
    return this.baseUs + (n * this.bytesPerBlock) / this.linkBytesPerUs;
  }

  /**
   * The remote KV a decode leg brings: every prompt token but the last (which the decode engine
   * computes to sample its first token). Undefined for other requests and one-token prompts.
   */
  remoteKv(req: GenerationRequest): { computedTokens: number } | undefined {
    if (!req.kvTransferParams?.do_remote_prefill || req.promptTokenIds.length < 2) return undefined;
    return { computedTokens: req.promptTokenIds.length - 1 };
  }

  /** At a prefill leg's first token its blocks are still held: remember them for the answer. */
  onFirstToken(requestId: string, req: GenerationRequest | undefined, core: EngineCore): void {
    if (req?.kvTransferParams?.do_remote_decode) this.blocks.set(requestId, core.kv.getBlocks(requestId));
  }

  /** `kv_transfer_params` for the prefill leg's response. */
  responseParams(req: GenerationRequest, requestId: string, _stats: RequestFinishedStats): { kv_transfer_params: KvTransferParams } | undefined {
    if (!req.kvTransferParams?.do_remote_decode) return undefined;
    const ids = this.blocks.get(requestId) ?? [];
    this.blocks.delete(requestId);
    return {
      kv_transfer_params: {
        do_remote_prefill: true,
        do_remote_decode: false,
        remote_engine_id: this.engineId ?? null,
        remote_block_ids: ids,
        remote_host: this.host,
        remote_port: this.port,
        remote_request_id: requestId,
      },
    };
  }
}
