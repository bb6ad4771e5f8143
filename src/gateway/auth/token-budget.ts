import { REQUEST_LIMITS } from "../../core/request.ts";
import type { GenerationRequest } from "../../core/entries.ts";
import { LifelineError } from "../../core/errors.ts";
import type { KeyStore } from "../../engine/keys/port.ts";
import type { Caller } from "./caller.ts";

const WINDOW_MS = 60_000;

/**
 * Model tokens per minute per API key (decision 035): each start spends its `max_tokens` (the most
 * the model may write; the schema's ceiling when the request names none) from the key's budget of
 * the current minute, in the key store, so every gateway spends from the same one. A start that would
 * pass the budget is refused with 429 `token_budget_spent` and stores nothing.
 */
export class TokenBudget {
  readonly #store: KeyStore;
  readonly #perMinute: number;

  constructor(store: KeyStore, perMinute: number) {
    this.#store = store;
    this.#perMinute = perMinute;
  }

  /**
   * Spends the start's tokens; the returned function gives them back, for a start that created no
   * generation (refused, or an `Idempotency-Key` replay of one already counted).
   */
  async spend(caller: Caller, request: GenerationRequest, nowMs = Date.now()): Promise<() => Promise<void>> {
    if (caller.kind !== "key" || this.#perMinute <= 0) return async () => undefined;
    const keyId = caller.holder.keyId;
    const tokens = request.max_tokens ?? REQUEST_LIMITS.maxTokens;
    const windowStart = nowMs - (nowMs % WINDOW_MS);
    if (await this.#store.spendTokens(keyId, windowStart, tokens, this.#perMinute)) {
      return async () => void (await this.#store.spendTokens(keyId, windowStart, -tokens, this.#perMinute));
    }
    throw new LifelineError(
      "token_budget_spent",
      `This key may ask for ${this.#perMinute} model tokens a minute, and this request's ${tokens} would pass that.`,
      undefined,
      { retryAfterSeconds: Math.max(1, Math.ceil((windowStart + WINDOW_MS - nowMs) / 1000)) },
    );
  }
}
