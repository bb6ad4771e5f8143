import { backoffDelay } from "../../core/retry.ts";

/** How often and how patiently a failed model call is tried again. */
export interface RetryPolicy {
  /** Calls per route before moving to the next (fallback) route; 1 means no retry. @defaultValue 3 */
  readonly maxAttempts: number;
  /** The first backoff's ceiling. @defaultValue 500 */
  readonly baseDelayMs: number;
  /** No backoff waits longer, unless Retry-After asks for more (up to `maxRetryAfterMs`). @defaultValue 10000 */
  readonly maxDelayMs: number;
  /** The longest Retry-After honoured; a provider asking for more is skipped for a fallback. @defaultValue 60000 */
  readonly maxRetryAfterMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 3, baseDelayMs: 500, maxDelayMs: 10_000, maxRetryAfterMs: 60_000 };

/**
 * Exponential backoff with full jitter (a uniform draw in [0, min(max, base·2^n)]), never shorter
 * than the provider's Retry-After. `retry` counts from 0.
 */
export function retryDelay(
  policy: RetryPolicy,
  retry: number,
  retryAfterMs: number | undefined,
  random: () => number = Math.random,
): number {
  const jittered = backoffDelay(policy.baseDelayMs, policy.maxDelayMs, retry, random);
  return retryAfterMs === undefined ? jittered : Math.max(jittered, Math.min(retryAfterMs, policy.maxRetryAfterMs));
}
