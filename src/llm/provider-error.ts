import { isRetryableStatus } from "../core/retry.ts";

/**
 * How a model call failed, in terms the resilience layer can act on. Providers throw this for
 * every failure they can name; anything else they throw counts as `protocol`.
 */
export type ProviderFailure =
  /** The provider answered with an HTTP error status before streaming. */
  | "status"
  /** The connection failed or was cut (DNS, refused, reset, ended mid-stream). */
  | "network"
  /** A connect, first-token, idle or total timeout ran out (raised by the resilience layer). */
  | "timeout"
  /** The provider sent something that is not its wire format. */
  | "protocol"
  /** The provider's circuit breaker is open; nothing was sent. */
  | "circuitOpen";

export class ProviderError extends Error {
  override readonly name = "ProviderError";

  constructor(
    readonly failure: ProviderFailure,
    message: string,
    readonly details: {
      /** The HTTP status, for `status`. */
      readonly status?: number;
      /** From a `Retry-After` header (seconds or an HTTP date), in milliseconds. */
      readonly retryAfterMs?: number;
      /** Whether another attempt can succeed: 408, 409, 425, 429, 5xx, network and timeouts are; 400, 401, 403, 404, 422 are not. */
      readonly retryable: boolean;
      /** The provider that failed (its configured name). */
      readonly provider?: string;
    },
  ) {
    super(message);
  }
}

/**
 * Whether a provider's HTTP status is worth another attempt: the one rule of `core/retry.ts`, and
 * 409, which OpenAI and Anthropic answer for a conflict on their side that a retry clears (their
 * own SDKs retry it). Lifeline's own API never answers 409 for something a retry would change.
 */
export function isRetryableProviderStatus(status: number): boolean {
  return status === 409 || isRetryableStatus(status);
}
