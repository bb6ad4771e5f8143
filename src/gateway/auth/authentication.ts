import type { FastifyInstance } from "fastify";
import type { IncomingHttpHeaders } from "node:http";
import { LifelineError } from "../../core/errors.ts";
import { KeyRing } from "../../engine/keys/key-ring.ts";
import type { KeyStore } from "../../engine/keys/port.ts";
import { OPEN, requireScope, type Caller } from "./caller.ts";
import { accessOf } from "./route-access.ts";

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

  constructor(store: KeyStore) {
    this.#ring = new KeyRing(store);
  }

  /** True when callers must present a key. */
  async required(): Promise<boolean> {
    if (this.#hasKeys) return true;
    if (performance.now() - this.#checkedAt < NO_KEYS_TRUSTED_MS) return false;
    this.#hasKeys = await this.#ring.store.hasKeys();
    this.#checkedAt = performance.now();
    return this.#hasKeys;
  }

  /** The caller the request's `Authorization` names; throws `unauthorized`, `invalid_api_key` or `api_key_revoked`. */
  async callerOf(headers: IncomingHttpHeaders): Promise<Caller> {
    if (!(await this.required())) return OPEN;
    const header = headers.authorization;
    if (header === undefined || header === "") throw new LifelineError("unauthorized");
    const bearer = BEARER.exec(header);
    if (!bearer) throw new LifelineError("invalid_api_key", "Authorization must be `Bearer <key>`.");
    const check = await this.#ring.check(bearer[1]!);
    if (check.kind === "invalid") throw new LifelineError("invalid_api_key");
    if (check.kind === "revoked") throw new LifelineError("api_key_revoked");
    return { kind: "key", holder: check.holder };
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
      request.caller = await auth.callerOf(request.headers);
    } catch (error) {
      if (error instanceof LifelineError && error.status === 401) void reply.header("www-authenticate", 'Bearer realm="lifeline"');
      throw error;
    }
    requireScope(request.caller, access);
  });
}
