import { describe, expect, it } from "vitest";
import { backoffDelay, isRetryableStatus, parseRetryAfter } from "../../src/core/retry.ts";
import { isRetryableProviderStatus } from "../../src/llm/provider-error.ts";

describe("one rule for trying again", () => {
  it("408, 425, 429 and every 5xx are retryable; other statuses are final; providers add their 409", () => {
    const retryable = [408, 425, 429, 500, 502, 503, 504, 599];
    const final = [200, 204, 400, 401, 403, 404, 409, 413, 415, 422];
    expect(retryable.filter(isRetryableStatus)).toEqual(retryable);
    expect(final.filter(isRetryableStatus)).toEqual([]);
    expect([...retryable, 409].every(isRetryableProviderStatus)).toBe(true);
    expect(final.filter((s) => s !== 409).some(isRetryableProviderStatus)).toBe(false);
  });

  it("backoff draws below a ceiling that doubles from the first delay up to the maximum", () => {
    const top = (retry: number): number => backoffDelay(250, 10_000, retry, () => 0.999_999);
    expect([0, 1, 2, 3, 4, 5, 6, 50].map(top)).toEqual([249, 499, 999, 1999, 3999, 7999, 9999, 9999]);
    expect(backoffDelay(250, 10_000, 3, () => 0)).toBe(0);
  });

  it("Retry-After is read as seconds or as an HTTP date, and nothing else", () => {
    const now = Date.parse("2026-11-30T10:00:00Z");
    expect(parseRetryAfter("2", now)).toBe(2000);
    expect(parseRetryAfter("0.5", now)).toBe(500);
    expect(parseRetryAfter("Mon, 30 Nov 2026 10:00:03 GMT", now)).toBe(3000);
    expect(parseRetryAfter("Mon, 30 Nov 2026 09:00:00 GMT", now)).toBe(0);
    for (const bad of [null, undefined, "", "  ", "-1", "soon"]) expect(parseRetryAfter(bad, now)).toBeUndefined();
  });
});
