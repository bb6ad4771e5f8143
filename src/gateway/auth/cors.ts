import fastifyCors from "@fastify/cors";
import type { FastifyInstance } from "fastify";
import { STREAM_CORS } from "../../core/stream-headers.ts";

/** Request headers a page may send: the key or token, the body's type, retries and resumes, the Durable Streams protocol's. */
const ALLOWED_HEADERS = ["authorization", "content-type", "idempotency-key", "last-event-id", ...STREAM_CORS.requestHeaders];

/** Response headers a page may read: the generation behind an answer, a replayed create, the AI SDK's stream marker, the Durable Streams protocol's. */
const EXPOSED_HEADERS = [
  "lifeline-generation-id",
  "idempotent-replayed",
  "x-vercel-ai-ui-message-stream",
  "retry-after",
  ...STREAM_CORS.responseHeaders,
];

/**
 * Cross-origin calls from browser pages (`LIFELINE_CORS_ORIGINS`): only the listed origins get the
 * CORS headers, on preflights and on answers; any other origin gets none, so its page cannot read
 * an answer. No origin is listed by default, and then nothing is registered: the chat page is served
 * by the gateway itself, from its own origin.
 */
export function installCors(app: FastifyInstance, origins: readonly string[]): void {
  if (origins.length === 0) return;
  const allowed = new Set(origins);
  void app.register(fastifyCors, {
    origin: (origin, callback) => callback(null, origin !== undefined && allowed.has(origin)),
    methods: ["GET", "HEAD", "POST", "PUT", "DELETE"],
    allowedHeaders: ALLOWED_HEADERS,
    exposedHeaders: EXPOSED_HEADERS,
    credentials: true,
    maxAge: 600,
    strictPreflight: true,
  });
}
