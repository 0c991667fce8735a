/**
 * vLLM's `--kv-events-config` JSON (`KVEventsConfig`), validated with zod: the same keys, the same
 * defaults, so an engine server is configured exactly like a vLLM server.
 *
 * @see vllm-project/vllm:vllm/config/kv_events.py (KVEventsConfig)
 * @see vllm-project/vllm:vllm/distributed/kv_events.py (ZmqEventPublisher)
 */
import { KvmgrError } from '@kvmgr/core';
import { z } from 'zod';

/** `--kv-events-config` as vLLM reads it, with vLLM's defaults; unknown keys are dropped. */
export const KvEventsConfigSchema = z.object({
  /** Publish KV events at all. @default false */
  enable_kv_cache_events: z.boolean().default(false),
  /** `zmq` publishes; `null` drops every event. @default 'zmq' (what vLLM picks once events are enabled) */
  publisher: z.enum(['zmq', 'null']).default('zmq'),
  /** PUB endpoint: binds when it contains `*`, `::`, `ipc://` or `inproc://`, else connects; port 0 binds an ephemeral port. @default 'tcp://*:5557' */
  endpoint: z.string().min(1).default('tcp://*:5557'),
  /** ROUTER endpoint serving replay (always binds); null = no replay. @default null */
  replay_endpoint: z.string().min(1).nullish(),
  /** Batches kept for replay. @default 10000 */
  buffer_steps: z.number().int().positive().default(10_000),
  /** ZMQ send high-water mark (messages). @default 100000 */
  hwm: z.number().int().positive().default(100_000),
  /** Accepted for compatibility; the engine server has no publish queue to bound. @default 100000 */
  max_queue_size: z.number().int().positive().default(100_000),
  /** Topic frame of every message (llm-d: `kv@<pod>@<model>`). @default '' */
  topic: z.string().default(''),
});

/** A validated `--kv-events-config`. */
export type KvEventsConfig = z.infer<typeof KvEventsConfigSchema>;

/**
 * Parses and validates `--kv-events-config`.
 *
 * @param input - the JSON text (as given on the command line) or an already decoded object.
 * @returns the config with vLLM's defaults filled in.
 * @throws KvmgrError `KVMGR_BAD_CONFIG` for text that is not JSON or a field of the wrong type
 *   (the message names the field and what was expected).
 */
export function parseKvEventsConfig(input: string | object): KvEventsConfig {
  let raw: unknown = input;
  if (typeof input === 'string') {
    try {
      raw = JSON.parse(input);
    } catch (e) {
      throw new KvmgrError('KVMGR_BAD_CONFIG', `--kv-events-config: expected a JSON object, got ${JSON.stringify(input.slice(0, 60))}`, { cause: e });
    }
  }
  const r = KvEventsConfigSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0];
    const at = issue === undefined || issue.path.length === 0 ? '(config)' : issue.path.join('.');
    throw new KvmgrError('KVMGR_BAD_CONFIG', `--kv-events-config ${at}: ${issue?.message ?? 'invalid'}`, { cause: r.error });
  }
  return r.data;
}
