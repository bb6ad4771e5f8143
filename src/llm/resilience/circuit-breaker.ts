/** When a provider's breaker opens, and for how long. */
export interface BreakerPolicy {
  /** Failures in a row that open the breaker (in either of its two rows, decision 062). @defaultValue 5 */
  readonly failureThreshold: number;
  /** How long it stays open before one trial call is let through. @defaultValue 30000 */
  readonly cooldownMs: number;
}

export const DEFAULT_BREAKER: BreakerPolicy = { failureThreshold: 5, cooldownMs: 30_000 };

/**
 * A circuit breaker per provider: closed while calls succeed; open after `failureThreshold`
 * failures in a row (calls are refused at once, so fallbacks serve); after `cooldownMs` one trial
 * call is let through (half-open): success closes it, failure opens it again.
 *
 * Failures are counted in two rows (decision 062). A call that fails before its first token adds
 * to the row of calls not answered, which any call's first token ends: a provider streaming long
 * answers is answering, whatever a few calls meanwhile do. A call that fails after its first token
 * adds to the row of streams broken, which only a call that completes ends: a provider that cuts
 * every stream opens its breaker however many first tokens it sends.
 */
export class CircuitBreaker {
  /** Calls that failed before their first token since a call last answered. */
  #failures = 0;
  /** Calls that failed after their first token since a call last completed. */
  #broken = 0;
  #openedAt: number | undefined;
  #trialInFlight = false;
  /** Settled when the trial call out now ends: what {@link trialEnded} hands out. */
  #trialEnd: { promise: Promise<void>; resolve: () => void } | undefined;
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

  /**
   * How long until a call may be tried, in ms: 0 while closed, or half-open with no trial call out;
   * what is left of the cooldown while open; `undefined` while the trial call is out (its outcome
   * decides: {@link trialEnded}).
   */
  msUntilTrial(): number | undefined {
    const state = this.state;
    if (state === "open") return this.#openedAt! + this.policy.cooldownMs - this.now();
    return state === "halfOpen" && this.#trialInFlight ? undefined : 0;
  }

  /** Settles once the trial call out now has ended (at once when none is out). */
  trialEnded(): Promise<void> {
    if (!this.#trialInFlight) return Promise.resolve();
    if (this.#trialEnd === undefined) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.#trialEnd = { promise, resolve };
    }
    return this.#trialEnd.promise;
  }

  /** Whether a call may go out now; a half-open breaker lets exactly one through. */
  tryAcquire(): boolean {
    const state = this.state;
    if (state === "closed") return true;
    if (state === "open" || this.#trialInFlight) return false;
    this.#trialInFlight = true;
    return true;
  }

  /** A call completed. */
  succeeded(): void {
    this.#failures = 0;
    this.#broken = 0;
    this.#openedAt = undefined;
    this.#endTrial();
  }

  /** A call's first token arrived: the provider answers (a trial call closes the breaker). */
  answered(): void {
    this.#failures = 0;
    if (!this.#trialInFlight) return;
    this.#openedAt = undefined;
    this.#endTrial();
  }

  /** The call ended without telling anything about the provider (it was cancelled or stopped). */
  abandon(): void {
    this.#endTrial();
  }

  /** A call failed; `afterFirstToken`, once it had streamed (a stream broken, not a call unanswered). */
  failed(afterFirstToken = false): void {
    if (afterFirstToken) this.#broken += 1;
    else this.#failures += 1;
    const threshold = this.policy.failureThreshold;
    if (this.#trialInFlight || this.#failures >= threshold || this.#broken >= threshold) {
      // Failures past the threshold while open (calls that went out before it opened) do not open it again.
      if (this.#openedAt === undefined || this.#trialInFlight) this.#opens += 1;
      this.#openedAt = this.now();
    }
    this.#endTrial();
  }

  #endTrial(): void {
    this.#trialInFlight = false;
    const end = this.#trialEnd;
    this.#trialEnd = undefined;
    end?.resolve();
  }
}
