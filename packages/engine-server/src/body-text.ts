/**
 * The JSON body's text, kept beside fastify's parsed body: a chat request's `tools` are rendered
 * from it with the number types and key order vLLM's `json.loads` reads (`1.0` stays a float; see
 * adapter-vllm's `markRequestToolsJson`). The parser is fastify's own (the same prototype-poisoning
 * checks as the default one); the text rides on the raw request object, as the arrival stamp does
 * (a `WeakMap` entry per request costs more).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';

const BODY_TEXT = Symbol('kvmgr.bodyText');
type BodyTextStamped = { [BODY_TEXT]?: string };

/** Replaces the `application/json` parser of `app` by fastify's default one that also keeps the text. */
export function keepJsonBodyText(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    (req.raw as BodyTextStamped)[BODY_TEXT] = body as string;
    parseJson(req, body as string, done);
  });
}

/** The text of a request's JSON body (undefined for another content type). */
export function jsonBodyText(req: FastifyRequest): string | undefined {
  return (req.raw as BodyTextStamped)[BODY_TEXT];
}
