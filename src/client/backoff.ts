import { backoffDelay as fullJitter } from "../core/retry.ts";

/** How long to wait between reconnects: exponential growth with full jitter. */
export interface ReconnectPolicy {
  /** The first delay's upper bound. @defaultValue 250 */
  readonly initialMs: number;
  /** No delay's upper bound grows past this. @defaultValue 10000 */
  readonly maxMs: number;
}

export const DEFAULT_RECONNECT: ReconnectPolicy = Object.freeze({ initialMs: 250, maxMs: 10_000 });

/** Full jitter: a uniform delay in [0, min(maxMs, initialMs · 2^attempt)). `attempt` starts at 0. */
export function backoffDelay(policy: ReconnectPolicy, attempt: number, random: () => number = Math.random): number {
  return fullJitter(policy.initialMs, policy.maxMs, attempt, random);
}

/** Waits `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
