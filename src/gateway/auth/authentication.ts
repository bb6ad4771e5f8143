import type { FastifyInstance } from "fastify";
import type { IncomingHttpHeaders } from "node:http";
import { LifelineError } from "../../core/errors.ts";
import { KeyRing } from "../../engine/keys/key-ring.ts";
import type { KeyStore } from "../../engine/keys/port.ts";
import { OPEN, requireScope, type Caller } from "./caller.ts";
import { looksLikeReadToken, ReadTokens } from "./read-tokens.ts";
import { accessOf, TOKEN_ROUTES } from "./route-access.ts";

declare module "fastify" {
  interface FastifyRequest {
    /** Who is asking: set before any route runs. */
    caller: Caller;
  }
}

/** How long a gateway that found no key trusts that answer: a key made meanwhile is asked for within this. */
const NO_KEYS_TRUSTED_MS = 2000;

const BEARER = /^Bearer ([\x21-\x7e]{1,512})$/;

/**
 * Decides who is asking. A deployment with no key is open (the gateway refuses to start that way on
 * an address other than loopback); once a key exists in the store, every caller presents one as
 * `Authorization: Bearer <key>`, on HTTP and on the WebSocket upgrade. Keys are checked against the
 * store on every request, so a revoked key is refused by every gateway at once.
 */
export class Authenticator {
  readonly #ring: KeyRing;
  /** Once true, for good: keys are never deleted. */
  #hasKeys = false;
  #checkedAt = -Infinity;

  /** Issues and checks browsers' read tokens. */
  readonly tokens: ReadTokens;

  constructor(store: KeyStore, tokenTtlMs?: number) {
    this.#ring = new KeyRing(store);
    this.tokens = new ReadTokens(store, tokenTtlMs);
  }

  /** True when callers must present a key. */
  async required(): Promise<boolean> {
    if (this.#hasKeys) return true;
    if (performance.now() - this.#checkedAt < NO_KEYS_TRUSTED_MS) return false;
    this.#hasKeys = await this.#ring.store.hasKeys();
    this.#checkedAt = performance.now();
    return this.#hasKeys;
  }

  /**
   * The caller the request's `Authorization` (a key or a read token) or its `token` query parameter
   * (a read token, as `EventSource` cannot set headers) names; throws `unauthorized`,
   * `invalid_api_key`, `api_key_revoked`, `invalid_token` or `token_expired`.
   */
  async callerOf(headers: IncomingHttpHeaders, queryToken?: unknown): Promise<Caller> {
    if (!(await this.required())) return OPEN;
    const header = headers.authorization;
    if (queryToken !== undefined) {
      if (typeof queryToken !== "string" || !looksLikeReadToken(queryToken)) throw new LifelineError("invalid_token");
      return this.#tokenCaller(queryToken);
    }
    if (header === undefined || header === "") throw new LifelineError("unauthorized");
    const bearer = BEARER.exec(header);
    if (!bearer) throw new LifelineError("invalid_api_key", "Authorization must be `Bearer <key>`.");
    if (looksLikeReadToken(bearer[1]!)) return this.#tokenCaller(bearer[1]!);
    const check = await this.#ring.check(bearer[1]!);
    if (check.kind === "invalid") throw new LifelineError("invalid_api_key");
    if (check.kind === "revoked") throw new LifelineError("api_key_revoked");
    return { kind: "key", holder: check.holder };
  }

  async #tokenCaller(token: string): Promise<Caller> {
    const check = await this.tokens.check(token);
    if (check.kind === "invalid") throw new LifelineError("invalid_token");
    if (check.kind === "expired") throw new LifelineError("token_expired");
    return { kind: "token", generation: check.generation, tenant: check.tenant, readOnly: check.readOnly };
  }
}

/** Sets `request.caller` before any route runs, and refuses a caller without the scope its route asks for. */
export function installAuthentication(app: FastifyInstance, auth: Authenticator): void {
  // Decorated with null (Fastify refuses a shared object), then set on every request before its route runs.
  app.decorateRequest("caller", null, []);
  app.addHook("onRequest", async (request, reply) => {
    request.caller = OPEN;
    const access = accessOf(request.method, request.routeOptions.url);
    if (access === undefined || access === "public") return;
    try {
      request.caller = await auth.callerOf(request.headers, (request.query as Record<string, unknown> | undefined)?.token);
    } catch (error) {
      if (error instanceof LifelineError && error.status === 401) void reply.header("www-authenticate", 'Bearer realm="lifeline"');
      throw error;
    }
    if (request.caller.kind === "token") {
      if (!TOKEN_ROUTES.has(`${request.method === "HEAD" ? "GET" : request.method} ${request.routeOptions.url}`))
        requireScope(request.caller, access);
      // A token given to a key that may only read opens no more than that key: no cancel.
      if (request.caller.readOnly && access !== "generations:read")
        throw new LifelineError("forbidden", "This read token was given to a key that may only read: it does not cancel.");
      return;
    }
    requireScope(request.caller, access);
  });
}
