/**
 * When to try again and how long to wait first: one rule for every HTTP peer Lifeline talks to
 * (the SDK talking to a gateway, a worker talking to a model's provider).
 */

/** 408 Request Timeout, 425 Too Early, 429 Too Many Requests and every 5xx are worth another try; other statuses are final. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 425 || status === 429 || status >= 500;
}

/**
 * Exponential backoff with full jitter: a uniform draw in [0, min(maxMs, firstMs · 2^retry)).
 * `retry` counts from 0.
 */
export function backoffDelay(firstMs: number, maxMs: number, retry: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, firstMs * 2 ** Math.min(retry, 30));
  return Math.floor(random() * ceiling);
}

/** `Retry-After` (delta-seconds or an HTTP date) in milliseconds from `now`; `undefined` when absent or unreadable. */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | undefined {
  const text = value?.trim() ?? "";
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  // An HTTP date names its day and month; anything else (a negative or signed number) is unreadable.
  if (!/[A-Za-z]/.test(text)) return undefined;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
