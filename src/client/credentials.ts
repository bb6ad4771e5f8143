import type { ErrorCode } from "../core/errors.ts";
import { routes } from "../core/routes.ts";
import type { ReconnectPolicy } from "./backoff.ts";
import { LifelineClientError } from "./errors.ts";
import { requestWithRetry } from "./http.ts";
import type { FetchFunction } from "./sse-transport.ts";

/** Where the application's read tokens come from: a token for generation `id`, each call a fresh one. */
export type ReadTokenSource = (generationId: string) => Promise<string> | string;

/** Codes with which the gateway refuses a read token that a fresh one would pass (decision 034). */
const RENEWABLE: ReadonlySet<ErrorCode> = new Set(["token_expired", "invalid_token"]);

/** Whether `error` is the gateway refusing a read token that a new one from the application may replace. */
export function isRenewableTokenError(error: unknown): error is LifelineClientError {
  return error instanceof LifelineClientError && RENEWABLE.has(error.code);
}

/** Tokens that came with `start`, kept for the follow that usually comes next; the oldest go first. */
const REMEMBERED = 1000;

/**
 * A client's credentials: an API key (a server's or a script's), a source of read tokens (a page's,
 * from its own server), or neither (an open deployment). Follows always present a read token when
 * the client has credentials: the WebSocket carries it in its `subscribe` frame, SSE and long-poll as
 * `?token=`; `start` and `cancel` present the key when there is one.
 */
export class Credentials {
  readonly #apiKey: string | undefined;
  readonly #source: ReadTokenSource | undefined;
  readonly #fetch: FetchFunction;
  readonly #baseUrl: string;
  readonly #reconnect: ReconnectPolicy;
  readonly #tokens = new Map<string, string>();

  constructor(options: {
    apiKey: string | undefined;
    readToken: ReadTokenSource | undefined;
    fetch: FetchFunction;
    baseUrl: string;
    reconnect: ReconnectPolicy;
  }) {
    if (options.apiKey !== undefined && !/^[\x21-\x7e]{1,512}$/.test(options.apiKey)) {
      throw new TypeError("apiKey must be 1 to 512 visible ASCII characters (a Lifeline key, llk_…)");
    }
    if (options.readToken !== undefined && typeof options.readToken !== "function") throw new TypeError("readToken must be a function");
    this.#apiKey = options.apiKey;
    this.#source = options.readToken;
    this.#fetch = options.fetch;
    this.#baseUrl = options.baseUrl;
    this.#reconnect = options.reconnect;
  }

  /** True when the client can get a read token by itself: from the application, or with its key. */
  get canRenew(): boolean {
    return this.#source !== undefined || this.#apiKey !== undefined;
  }

  /** `Authorization` for a request made with the key, or with `token` when there is no key. */
  headers(token?: string): Record<string, string> {
    const bearer = this.#apiKey ?? token;
    return bearer === undefined ? {} : { authorization: `Bearer ${bearer}` };
  }

  /** Keeps the token a generation was started with, for its first follow. */
  remember(id: string, token: string): void {
    this.#tokens.delete(id);
    if (this.#tokens.size >= REMEMBERED) this.#tokens.delete(this.#tokens.keys().next().value!);
    this.#tokens.set(id, token);
  }

  /** The token this client holds for `id`, if any, without asking anyone. */
  known(id: string): string | undefined {
    return this.#tokens.get(id);
  }

  /**
   * The token to follow `id` with: the one held for it, else a new one (see {@link renew}); none
   * when the client has no credentials.
   */
  async tokenFor(id: string, signal: AbortSignal): Promise<string | undefined> {
    return this.#tokens.get(id) ?? (this.canRenew ? this.renew(id, signal) : undefined);
  }

  /**
   * A new token for `id`: from the application's `readToken`, else `POST /v1/generations/:id/token`
   * with the key. The application's error is passed on as it is.
   */
  async renew(id: string, signal: AbortSignal): Promise<string> {
    let token: unknown;
    if (this.#source) {
      token = await this.#source(id);
    } else if (this.#apiKey !== undefined) {
      const res = await requestWithRetry({
        fetch: this.#fetch,
        url: `${this.#baseUrl}${routes.token(id)}`,
        init: { method: "POST", headers: this.headers() },
        reconnect: this.#reconnect,
        signal,
      });
      token = ((await res.json()) as { token?: unknown }).token;
    }
    if (typeof token !== "string" || token === "") {
      throw new LifelineClientError("protocol_error", `no read token for ${id}: readToken must give a non-empty string`);
    }
    signal.throwIfAborted();
    this.remember(id, token);
    return token;
  }

  /** Lets go of the token of a generation no longer followed. */
  forget(id: string, token: string | undefined): void {
    if (token === undefined || this.#tokens.get(id) === token) this.#tokens.delete(id);
  }
}
