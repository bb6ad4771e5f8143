import { parseRetryAfter } from "../../core/retry.ts";
import { ProviderError, isRetryableProviderStatus } from "../provider-error.ts";

/** Who failed, for the error's message and details; `secret` never reaches a message. */
export interface FailureSource {
  readonly provider: string;
  readonly secret: string | undefined;
}

/**
 * The HTTP status each wire error type stands for, for errors a provider sends inside a 200
 * stream (Anthropic's documented `error.type` values, and OpenAI's `type`/`code` names).
 */
const STATUS_OF_ERROR_TYPE: Readonly<Record<string, number>> = {
  invalid_request_error: 400,
  authentication_error: 401,
  billing_error: 402,
  permission_error: 403,
  not_found_error: 404,
  invalid_api_key: 401,
  request_too_large: 413,
  rate_limit_error: 429,
  rate_limit_exceeded: 429,
  api_error: 500,
  server_error: 500,
  service_unavailable: 503,
  timeout_error: 504,
  overloaded_error: 529,
};

/** The status a wire error's `type` or `code` names; own keys only, so `constructor` names none. */
function statusOfErrorType(name: unknown): number | undefined {
  return typeof name === "string" && Object.hasOwn(STATUS_OF_ERROR_TYPE, name) ? STATUS_OF_ERROR_TYPE[name] : undefined;
}

/** Replaces every occurrence of `secret` (an API key a server may echo back) in `text`. */
export function redact(text: string, secret: string | undefined): string {
  return secret === undefined || secret === "" ? text : text.split(secret).join("[redacted]");
}

function providerError(
  source: FailureSource,
  failure: ProviderError["failure"],
  message: string,
  details: Omit<ProviderError["details"], "provider">,
): ProviderError {
  return new ProviderError(failure, `${source.provider}: ${redact(message, source.secret)}`, { ...details, provider: source.provider });
}

function retryAfterMs(headers: Readonly<Record<string, string | string[] | undefined>> | undefined): number | undefined {
  // OpenAI and Anthropic also send the wait in milliseconds; it is the more precise of the two.
  const ms = parseFloat(String(headers?.["retry-after-ms"] ?? ""));
  if (Number.isFinite(ms) && ms >= 0) return Math.round(ms);
  const seconds = headers?.["retry-after"];
  return parseRetryAfter(typeof seconds === "string" ? seconds : undefined);
}

/** An HTTP error status the provider answered, with its retryability and the wait it asked for. */
export function statusFailure(
  source: FailureSource,
  status: number,
  message: string,
  headers: Readonly<Record<string, string | string[] | undefined>> | undefined,
): ProviderError {
  const wait = retryAfterMs(headers);
  return providerError(source, "status", `HTTP ${status}: ${message}`, {
    status,
    retryable: isRetryableProviderStatus(status),
    ...(wait === undefined ? {} : { retryAfterMs: wait }),
  });
}

/** The connection failed: refused, reset, cut mid-body. Another attempt may succeed. */
export function networkFailure(source: FailureSource, error: unknown): ProviderError {
  return providerError(source, "network", causes(error), { retryable: true });
}

/** The provider sent something that is not its wire format. */
export function protocolFailure(source: FailureSource, message: string): ProviderError {
  return providerError(source, "protocol", message, { retryable: false });
}

/** The messages along an error's `cause` chain: "terminated: other side closed". */
function causes(error: unknown): string {
  const messages: string[] = [];
  for (let e = error, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    // The SDK often quotes its cause already ("Cannot connect to API: <cause>").
    if (!messages.at(-1)?.endsWith(e.message)) messages.push(e.message);
  }
  return messages.join(": ");
}

interface WireError {
  readonly message: string;
  readonly type?: unknown;
  readonly code?: unknown;
}

export function isWireError(value: unknown): value is WireError {
  return typeof value === "object" && value !== null && !(value instanceof Error) && typeof (value as WireError).message === "string";
}

/** An error object the provider sent inside the stream: mapped to the HTTP status it stands for. */
export function fromWireError(error: WireError, source: FailureSource): ProviderError {
  const code = typeof error.code === "number" && error.code >= 400 && error.code <= 599 ? error.code : undefined;
  // OpenAI's string `code` is the more specific name (`type: "requests", code: "rate_limit_exceeded"`).
  const byCode = statusOfErrorType(error.code);
  const byType = statusOfErrorType(error.type);
  // An unnamed mid-answer failure is the server's: another attempt may succeed.
  const status = code ?? byCode ?? byType ?? 500;
  const kind = typeof error.type === "string" ? ` (${error.type})` : "";
  return providerError(source, "status", `error in stream${kind}: ${error.message}`, {
    status,
    retryable: isRetryableProviderStatus(status),
  });
}

/** The stream ended (cleanly, at the HTTP level) before the model said it had finished. */
export function endedEarly(source: FailureSource): ProviderError {
  return providerError(source, "network", "the stream ended before the model finished", { retryable: true });
}
