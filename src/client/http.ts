import { backoffDelay, sleep, type ReconnectPolicy } from "./backoff.ts";
import { isRetryableStatus } from "../core/retry.ts";
import { LifelineClientError, errorFromResponse, retryAfterMs } from "./errors.ts";
import type { FetchFunction } from "./sse-transport.ts";

/** How many times a request is tried when the network or the server fails. */
export const REQUEST_ATTEMPTS = 5;

export interface RequestPlan {
  readonly fetch: FetchFunction;
  readonly url: string;
  readonly init: RequestInit;
  readonly reconnect: ReconnectPolicy;
  readonly signal?: AbortSignal | undefined;
}

/**
 * Sends a request that is safe to repeat (an idempotent POST, a GET), again on a network error,
 * 408, 429 or 5xx, with backoff; any other failure is a {@link LifelineClientError}.
 */
export async function requestWithRetry(plan: RequestPlan): Promise<Response> {
  let lastError: LifelineClientError | undefined;
  for (let attempt = 0; attempt < REQUEST_ATTEMPTS; attempt++) {
    plan.signal?.throwIfAborted();
    let waitAtLeast = 0;
    try {
      const res = await plan.fetch(plan.url, { ...plan.init, ...(plan.signal ? { signal: plan.signal } : {}) });
      if (res.ok) return res;
      lastError = await errorFromResponse(res);
      if (!isRetryableStatus(res.status)) throw lastError;
      waitAtLeast = retryAfterMs(res) ?? 0;
    } catch (error) {
      if (error instanceof LifelineClientError && error.status !== undefined && !isRetryableStatus(error.status)) throw error;
      plan.signal?.throwIfAborted();
      if (!(error instanceof LifelineClientError)) {
        lastError = new LifelineClientError("network_error", error instanceof Error ? error.message : String(error));
      }
    }
    if (attempt + 1 < REQUEST_ATTEMPTS) await sleep(Math.max(backoffDelay(plan.reconnect, attempt), waitAtLeast), plan.signal);
  }
  throw lastError ?? new LifelineClientError("network_error", "the request failed");
}

/** A random idempotency key: `crypto.randomUUID` where the page is a secure context, else 128 random bits. */
export function newIdempotencyKey(): string {
  const c = globalThis.crypto;
  if (typeof c?.randomUUID === "function") return c.randomUUID();
  const bytes = c.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
