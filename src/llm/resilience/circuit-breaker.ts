/** When a provider's breaker opens, and for how long. */
export interface BreakerPolicy {
  /** Consecutive failures that open the breaker. @defaultValue 5 */
  readonly failureThreshold: number;
  /** How long it stays open before one trial call is let through. @defaultValue 30000 */
  readonly cooldownMs: number;
}

export const DEFAULT_BREAKER: BreakerPolicy = { failureThreshold: 5, cooldownMs: 30_000 };

/**
 * A circuit breaker per provider: closed while calls succeed; open after `failureThreshold`
 * failures in a row (calls are refused at once, so fallbacks serve); after `cooldownMs` one trial
 * call is let through (half-open): success closes it, failure opens it again.
 */
export class CircuitBreaker {
  #failures = 0;
  #openedAt: number | undefined;
  #trialInFlight = false;
  #opens = 0;

  constructor(
    readonly policy: BreakerPolicy,
    private readonly now: () => number = Date.now,
  ) {}

  get state(): "closed" | "open" | "halfOpen" {
    if (this.#openedAt === undefined) return "closed";
    return this.now() - this.#openedAt >= this.policy.cooldownMs ? "halfOpen" : "open";
  }

  /** When the breaker last opened (ms since the epoch, its clock); `undefined` while closed. */
  get openedAt(): number | undefined {
    return this.#openedAt;
  }

  /** How many times it opened since it was made (a failed trial call opens it again): the metrics count these. */
  get opens(): number {
    return this.#opens;
  }

  /** Whether a call may go out now; a half-open breaker lets exactly one through. */
  tryAcquire(): boolean {
    const state = this.state;
    if (state === "closed") return true;
    if (state === "open" || this.#trialInFlight) return false;
    this.#trialInFlight = true;
    return true;
  }

  succeeded(): void {
    this.#failures = 0;
    this.#openedAt = undefined;
    this.#trialInFlight = false;
  }

  /** The call ended without telling anything about the provider (it was cancelled or stopped). */
  abandon(): void {
    this.#trialInFlight = false;
  }

  failed(): void {
    this.#failures += 1;
    if (this.#trialInFlight || this.#failures >= this.policy.failureThreshold) {
      // Failures past the threshold while open (calls that went out before it opened) do not open it again.
      if (this.#openedAt === undefined || this.#trialInFlight) this.#opens += 1;
      this.#openedAt = this.now();
    }
    this.#trialInFlight = false;
  }
}
