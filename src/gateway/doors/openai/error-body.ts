import type { FastifyReply, FastifyRequest } from "fastify";
import { NO_RETRY } from "./wire.ts";

/**
 * Statuses the official client would retry by default (409, 5xx) although the same request would
 * meet the same answer: a conflict, or an answer that failed after Lifeline's own retries.
 */
const FINAL_STATUSES = new Set([409, 502]);

/**
 * The door's `onSend` hook. Lifeline's error body `{"error":{"code","message","details"?}}` is
 * already what the official client reads; this adds the fields it also exposes (`type`, `param`),
 * and `x-should-retry: false` where a retry could only meet the same answer.
 */
export async function openAiErrorBody(_request: FastifyRequest, reply: FastifyReply, payload: unknown): Promise<unknown> {
  const status = reply.statusCode;
  if (status < 400) return payload;
  if (FINAL_STATUSES.has(status)) void reply.headers(NO_RETRY);
  if (typeof payload !== "string" || !payload.startsWith('{"error":')) return payload;
  const body = JSON.parse(payload) as { error: Record<string, unknown> };
  const details = body.error.details;
  const first = Array.isArray(details) ? (details[0] as { path?: unknown } | undefined) : undefined;
  body.error.type = status >= 500 ? "server_error" : "invalid_request_error";
  body.error.param = typeof first?.path === "string" ? first.path : null;
  return JSON.stringify(body);
}
