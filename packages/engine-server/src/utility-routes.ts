/**
 * vLLM's non-generation routes: `GET /v1/models`, `/health`, `/version`, `/metrics`, and
 * `POST /tokenize`, `/detokenize`, `/reset_prefix_cache`.
 *
 * @see vllm-project/vllm:vllm/entrypoints/openai/api_server.py
 */
import { createRequire } from 'node:module';
import { type Tokenizer, openAiError, parseOpenAiRequest } from '@kvmgr/adapter-vllm';
import { type ChatRenderOptions, ChatMessageSchema, ChatTemplateFields, ChatToolsSchema, chatPromptOr400, chatTemplateFieldsCheck } from '@kvmgr/adapter-vllm';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { jsonBodyText } from './body-text.js';
import type { EngineMetricsExporter } from './engine-metrics.js';

/** What the utility routes need from the server. */
export interface UtilityRouteContext {
  readonly modelNames: readonly string[];
  readonly servedModelName: string;
  readonly maxModelLen: number;
  readonly exporter: EngineMetricsExporter;
  /** Drops the prefix cache; false when refused (requests hold blocks). */
  readonly resetPrefixCache: () => boolean;
  /** The model's tokenizer: `/tokenize`, `/detokenize` and the vocabulary size of their token ids. */
  readonly tokenizer: Tokenizer;
}

/** The `/tokenize` and `/detokenize` body schemas for a vocabulary of `vocabSize` ids. */
function schemasFor(vocabSize: number) {
  const TokenIds = z.array(z.number().int().nonnegative().lt(vocabSize, `expected token ids below ${vocabSize}`));
  return {
    /**
     * `/tokenize` body: a completion `prompt` or chat `messages` (with the chat request's `tools`,
     * `chat_template_kwargs`, `add_generation_prompt` and `continue_final_message`, rendered as the
     * template does, as vLLM's `TokenizeChatRequest`).
     */
    tokenize: z.union(
      [
        z.looseObject({ model: z.string().nullish(), prompt: z.union([z.string(), TokenIds]), add_special_tokens: z.boolean().nullish() }),
        z.looseObject({ model: z.string().nullish(), messages: z.array(ChatMessageSchema).min(1), tools: ChatToolsSchema, ...ChatTemplateFields }).check(chatTemplateFieldsCheck),
      ],
      { error: 'expected {prompt} or {messages}' },
    ),
    /** `/detokenize` body. */
    detokenize: z.looseObject({ model: z.string().nullish(), tokens: TokenIds }),
  };
}

const VERSION = (createRequire(import.meta.url)('../package.json') as { version: string }).version;

/** Registers the routes on `app`. */
export function registerUtilityRoutes(app: FastifyInstance, ctx: UtilityRouteContext): void {
  const created = Math.floor(Date.now() / 1000);
  const tok = ctx.tokenizer;
  const { tokenize: TokenizeSchema, detokenize: DetokenizeSchema } = schemasFor(tok.vocabSize);
  const unknownModel = (model: string | null | undefined) =>
    model != null && !ctx.modelNames.includes(model) ? openAiError(404, `The model \`${model}\` does not exist.`, { param: 'model', code: 'model_not_found' }) : null;

  app.get('/v1/models', async () => ({
    object: 'list',
    data: [{ id: ctx.servedModelName, object: 'model', created, owned_by: 'kvmgr', root: ctx.servedModelName, parent: null, max_model_len: ctx.maxModelLen, permission: [] }],
  }));
  app.get('/health', async (_req, reply) => reply.code(200).send());
  app.get('/version', async () => ({ version: VERSION, engine: 'kvmgr-engine-server' }));
  app.get('/metrics', async (_req, reply) => {
    ctx.exporter.sync();
    const reg = ctx.exporter.metrics.registry;
    return reply.type(reg.contentType).send(await reg.metrics());
  });

  app.post('/tokenize', async (req, reply) => {
    const r = parseOpenAiRequest(TokenizeSchema, req.body);
    if (!r.ok) return reply.code(r.error.status).send(r.error.body);
    const b = r.value as ChatRenderOptions & { model?: string | null; prompt?: string | number[]; add_special_tokens?: boolean | null; messages?: z.infer<typeof ChatMessageSchema>[] };
    const notFound = unknownModel(b.model);
    if (notFound) return reply.code(notFound.status).send(notFound.body);
    let tokens: number[];
    if (b.messages !== undefined) {
      const chat = chatPromptOr400(tok, b as typeof b & { messages: z.infer<typeof ChatMessageSchema>[] }, jsonBodyText(req));
      if (!chat.ok) return reply.code(chat.error.status).send(chat.error.body);
      tokens = chat.value;
    } else if (typeof b.prompt === 'string') tokens = b.add_special_tokens === false ? tok.encode(b.prompt) : (tok.completionPromptTokenIds(b.prompt)[0] ?? []);
    else tokens = [...(b.prompt ?? [])];
    return { count: tokens.length, max_model_len: ctx.maxModelLen, tokens };
  });

  app.post('/detokenize', async (req, reply) => {
    const r = parseOpenAiRequest(DetokenizeSchema, req.body);
    if (!r.ok) return reply.code(r.error.status).send(r.error.body);
    const notFound = unknownModel(r.value.model);
    if (notFound) return reply.code(notFound.status).send(notFound.body);
    return { prompt: tok.decode(r.value.tokens) };
  });

  app.post('/reset_prefix_cache', async (_req, reply) => {
    if (ctx.resetPrefixCache()) return reply.code(200).send();
    const e = openAiError(409, 'cannot reset the prefix cache while requests hold KV blocks; retry when the engine is idle', { code: 'engine_busy' });
    return reply.code(e.status).send(e.body);
  });
}
