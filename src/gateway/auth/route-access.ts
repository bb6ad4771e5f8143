import type { Scope } from "../../core/api-keys.ts";

/** What a route asks of a caller once the deployment has keys: nothing (`public`), or a scope. */
export type Access = Scope | "public";

/**
 * Every route of the gateway and what it asks, in one table (`METHOD /template` as Fastify registers
 * it; HEAD is asked as GET). A route missing here asks for `admin`: a new route is closed until it is
 * listed. A test holds the table and the registered routes together.
 */
export const ROUTE_ACCESS: Readonly<Record<string, Access>> = {
  "GET /healthz": "public",
  // CORS preflights (only with LIFELINE_CORS_ORIGINS): they carry no key by the browser's rules.
  "OPTIONS *": "public",
  "GET /readyz": "public",
  "GET /metrics": "admin",
  // The pages and the client SDK hold no data: the data they show is asked for with a key or token.
  "GET /": "public",
  "GET /*": "public",
  "GET /client.js": "public",
  "GET /ops": "public",
  // The native API.
  "POST /v1/generations": "generations:create",
  "GET /v1/generations/:id": "generations:read",
  "GET /v1/generations/:id/timeline": "generations:read",
  "GET /v1/generations/:id/events": "generations:read",
  "GET /v1/generations/:id/poll": "generations:read",
  "POST /v1/generations/:id/cancel": "generations:create",
  "POST /v1/generations/:id/token": "generations:read",
  "GET /v1/ws": "generations:read",
  // What operators see (decision 041): every tenant's answers and every worker.
  "GET /v1/ops/workers": "admin",
  "GET /v1/ops/overview": "admin",
  "GET /v1/ops/generations": "admin",
  // The OpenAI-compatible door (docs/protocols/openai.md).
  "POST /v1/chat/completions": "generations:create",
  "POST /v1/responses": "generations:create",
  "GET /v1/responses/:id": "generations:read",
  "POST /v1/responses/:id/cancel": "generations:create",
  // The AI SDK door (docs/protocols/ai-sdk.md): a chat's answers are its tenant's.
  "POST /v1/ai-sdk/chat": "generations:create",
  "GET /v1/ai-sdk/chat/:chatId/stream": "generations:read",
  "POST /v1/ai-sdk/chat/:chatId/stop": "generations:create",
  // The Durable Streams door (docs/protocols/durable-streams.md): a key's streams are its tenant's,
  // and generations under generations/<id> are read as on the native API.
  "GET /v1/stream/*": "generations:read",
  "PUT /v1/stream/*": "generations:create",
  "POST /v1/stream/*": "generations:create",
  "DELETE /v1/stream/*": "generations:create",
};

/** The routes a browser's read token opens (for its one generation; `Owners.check` holds it to that). */
export const TOKEN_ROUTES: ReadonlySet<string> = new Set([
  "GET /v1/generations/:id",
  "GET /v1/generations/:id/events",
  "GET /v1/generations/:id/poll",
  "POST /v1/generations/:id/cancel",
  "GET /v1/ws",
  "GET /v1/responses/:id",
  "POST /v1/responses/:id/cancel",
]);

/** The access a request to `method url` asks for; `undefined` when no route matched (the 404 answers it). */
export function accessOf(method: string, url: string | undefined): Access | undefined {
  if (url === undefined) return undefined;
  return ROUTE_ACCESS[`${method === "HEAD" ? "GET" : method} ${url}`] ?? "admin";
}
