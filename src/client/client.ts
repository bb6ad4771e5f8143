import type { GenerationRequest } from "../core/entries.ts";
import { routes } from "../core/routes.ts";
import { HEADERS, LONG_POLL } from "../core/wire.ts";
import { DEFAULT_RECONNECT, type ReconnectPolicy } from "./backoff.ts";
import { Credentials, isRenewableTokenError, type ReadTokenSource } from "./credentials.ts";
import { LifelineClientError } from "./errors.ts";
import { AnswerFollow, type FollowContext } from "./follow.ts";
import { newIdempotencyKey, requestWithRetry } from "./http.ts";
import { sseTransport, type FetchFunction } from "./sse-transport.ts";
import { pollTransport } from "./poll-transport.ts";
import { TRANSPORT_NAMES, type Transport, type TransportName } from "./transport.ts";
import type { FollowOptions, StartOptions } from "./types.ts";
import { webSocketTransport, type WebSocketConstructor } from "./ws-transport.ts";

/** Options of {@link createClient}. */
export interface ClientOptions {
  /** The gateway, e.g. `https://lifeline.example.com` or `""` for the page's own origin. */
  readonly baseUrl: string;
  /** @defaultValue `globalThis.fetch` */
  readonly fetch?: FetchFunction | undefined;
  /** @defaultValue `globalThis.WebSocket`; in Node 20, pass the `ws` package's class. */
  readonly WebSocket?: WebSocketConstructor | undefined;
  /**
   * Tried in this order; the next one takes over when one fails to connect `fallbackAfter` times in
   * a row, or at once when something in the way refuses it. @defaultValue ["sse", "websocket", "long-poll"]
   */
  readonly transports?: readonly TransportName[] | undefined;
  /** A connection with neither data nor a heartbeat for this long is dropped and reopened. @defaultValue 45000 */
  readonly heartbeatTimeoutMs?: number | undefined;
  /** Backoff between reconnects (full jitter). @defaultValue { initialMs: 250, maxMs: 10000 } */
  readonly reconnect?: ReconnectPolicy | undefined;
  /** Connections in a row that fail to open before falling back to the next transport. @defaultValue 3 */
  readonly fallbackAfter?: number | undefined;
  /**
   * An API key (`llk_…`) for a deployment that asks for keys: sent as `Authorization: Bearer` by
   * `start` and `cancel`, and used to get read tokens for follows (`POST /v1/generations/:id/token`)
   * when there is no `readToken`. For servers and scripts; a page should not hold a key of its own.
   */
  readonly apiKey?: string | undefined;
  /**
   * Gives a read token (`llt_…`) for a generation: a page asks the server that started it. Called
   * for a follow that has no token yet, and again whenever the gateway refuses the one it has
   * (`token_expired`, `invalid_token`); the follow then resumes from its cursor.
   */
  readonly readToken?: ReadTokenSource | undefined;
}

/** A started generation. */
export interface StartedGeneration {
  readonly id: string;
  readonly status: string;
  /** The read token the gateway gave with it (a request made with a key); the client follows with it. */
  readonly token?: string;
  /** When `token` expires (ISO 8601). */
  readonly tokenExpiresAt?: string;
}

/** The Lifeline client: start answers, follow them to their end through any failure, cancel them. */
export interface LifelineClient {
  /** `POST /v1/generations`, retried with the same `Idempotency-Key` on a network error or 5xx. */
  start(request: GenerationRequest, options?: StartOptions): Promise<StartedGeneration>;
  /** Follows a generation's log until its terminal entry. */
  follow(id: string, options?: FollowOptions): AnswerFollow;
  /**
   * `POST /v1/generations/:id/cancel`, with the key, else with the generation's read token; a
   * generation that already ended is not an error.
   */
  cancel(id: string): Promise<void>;
  /**
   * Stops every follow of this client (their `done` rejects with an `AbortError`) and closes its
   * shared WebSocket at once, so a Node process can exit. The generations go on; `follow` after
   * `close` throws.
   */
  close(): void;
}

/** Creates a client. Works in browsers and in Node 20 (pass `WebSocket` there to use WebSockets). */
export function createClient(options: ClientOptions): LifelineClient {
  const baseUrl = options.baseUrl.replace(/\/+$/, "");
  const given = options.fetch;
  const fetchFn: FetchFunction = given ? (input, init) => given(input, init) : (input, init) => globalThis.fetch(input, init);
  const reconnect = options.reconnect ?? DEFAULT_RECONNECT;
  if (!(reconnect.initialMs > 0 && reconnect.maxMs >= reconnect.initialMs)) {
    throw new RangeError("reconnect needs 0 < initialMs ≤ maxMs");
  }
  const heartbeatTimeoutMs = options.heartbeatTimeoutMs ?? 45_000;
  if (!(heartbeatTimeoutMs > 0)) throw new RangeError("heartbeatTimeoutMs must be positive");
  const transports = transportsOf(options, baseUrl, fetchFn, heartbeatTimeoutMs);
  const follows = new Set<AnswerFollow>();
  let closed = false;
  const credentials = new Credentials({ apiKey: options.apiKey, readToken: options.readToken, fetch: fetchFn, baseUrl, reconnect });

  const cancel = async (id: string, token?: string): Promise<void> => {
    const post = (bearer: string | undefined): Promise<Response> =>
      requestWithRetry({
        fetch: fetchFn,
        url: `${baseUrl}${routes.cancel(id)}`,
        init: { method: "POST", headers: credentials.headers(bearer) },
        reconnect,
      });
    const never = new AbortController().signal;
    try {
      const held = token ?? credentials.known(id) ?? (options.apiKey === undefined ? await credentials.tokenFor(id, never) : undefined);
      try {
        await post(held);
      } catch (error) {
        if (options.apiKey !== undefined || !credentials.canRenew || !isRenewableTokenError(error)) throw error;
        await post(await credentials.renew(id, never));
      }
    } catch (error) {
      if (error instanceof LifelineClientError && error.code === "already_finished") return;
      throw error;
    }
  };
  const context: FollowContext = {
    transports,
    heartbeatTimeoutMs,
    reconnect,
    fallbackAfter: options.fallbackAfter ?? 3,
    preferred: 0,
    credentials,
    cancel,
    async statusOf(id, signal, token) {
      const res = await requestWithRetry({
        fetch: fetchFn,
        url: `${baseUrl}${routes.generation(id)}`,
        init: { headers: credentials.headers(token) },
        reconnect,
        signal,
      });
      const view = (await res.json()) as { status?: unknown };
      return typeof view.status === "string" ? view.status : "unknown";
    },
  };

  return Object.freeze({
    async start(request: GenerationRequest, startOptions: StartOptions = {}): Promise<StartedGeneration> {
      const key = startOptions.idempotencyKey ?? newIdempotencyKey();
      const res = await requestWithRetry({
        fetch: fetchFn,
        url: `${baseUrl}${routes.generations()}`,
        init: {
          method: "POST",
          headers: { "content-type": "application/json", [HEADERS.idempotencyKey]: key, ...credentials.headers() },
          body: JSON.stringify(request),
        },
        reconnect,
        signal: startOptions.signal,
      });
      const body = (await res.json()) as { id?: unknown; status?: unknown; token?: unknown; tokenExpiresAt?: unknown };
      if (typeof body.id !== "string") throw new LifelineClientError("protocol_error", "the server answered without an id", res.status);
      const started = { id: body.id, status: typeof body.status === "string" ? body.status : "queued" };
      if (typeof body.token !== "string") return started;
      credentials.remember(body.id, body.token);
      return { ...started, token: body.token, ...(typeof body.tokenExpiresAt === "string" ? { tokenExpiresAt: body.tokenExpiresAt } : {}) };
    },
    follow(id: string, followOptions?: FollowOptions): AnswerFollow {
      if (closed) throw new LifelineClientError("client_closed", "The client was closed.");
      const follow = new AnswerFollow(context, id, followOptions);
      follows.add(follow);
      void follow.done.catch(() => undefined).finally(() => follows.delete(follow));
      return follow;
    },
    cancel: (id: string) => cancel(id),
    close(): void {
      closed = true;
      for (const follow of [...follows]) follow.close();
      for (const transport of transports) transport.close?.();
    },
  });
}

function transportsOf(options: ClientOptions, baseUrl: string, fetchFn: FetchFunction, heartbeatTimeoutMs: number): Transport[] {
  const names = options.transports ?? TRANSPORT_NAMES;
  const WebSocketClass = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  const transports: Transport[] = [];
  for (const name of new Set(names)) {
    if (name === "sse") transports.push(sseTransport(baseUrl, fetchFn));
    // A held poll ends well before the watchdog would take it for a dead link.
    else if (name === "long-poll")
      transports.push(pollTransport(baseUrl, fetchFn, Math.min(LONG_POLL.defaultWaitMs, heartbeatTimeoutMs / 2)));
    else if (name === "websocket" && WebSocketClass) transports.push(webSocketTransport(baseUrl, WebSocketClass));
    else if (name !== "websocket") throw new RangeError(`unknown transport "${String(name)}"`);
  }
  // Without a WebSocket class (Node 20), the default goes without it; asking for WebSocket alone is an error.
  if (transports.length === 0) throw new TypeError('no usable transport: pass a WebSocket class or include "sse" or "long-poll"');
  return transports;
}
