/**
 * Every error code of Lifeline, in one place: the codes the API answers with (each with its HTTP
 * status), the codes `retrying` and `failed` entries carry, and the client SDK's own. Callers branch
 * on `code`, never on a message. `docs/http-api.md` lists the same table; a test holds them together.
 *
 * `status` is the HTTP status the API answers the code with; `null` marks a code that is never an
 * answer's status (one written into a log entry, or one the client SDK raises itself).
 */
export const ERROR_CODES = {
  // Answers of the HTTP API, and `error` frames of the WebSocket.
  invalid_json: { status: 400, message: "The request body is not valid JSON." },
  invalid_utf8: { status: 400, message: "The request body is not valid UTF-8." },
  invalid_request: { status: 400, message: "The request does not match the expected schema." },
  invalid_cursor: { status: 400, message: "The cursor is not a valid position in this log." },
  invalid_header: { status: 400, message: "A request header has an invalid value." },
  invalid_url: { status: 400, message: "The URL is not valid: a malformed percent-encoding, or a path segment that is too long." },
  unknown_model: { status: 400, message: "The model is not configured." },
  not_found: { status: 404, message: "No such route." },
  generation_not_found: { status: 404, message: "No generation has this id." },
  request_timeout: { status: 408, message: "The request's headers did not arrive in time." },
  idempotency_key_reused: { status: 409, message: "This Idempotency-Key was already used with a different request." },
  already_finished: { status: 409, message: "The generation has already finished." },
  precondition_failed: { status: 412, message: "A precondition of the request does not hold." },
  body_too_large: { status: 413, message: "The request body is larger than the limit." },
  unsupported_media_type: { status: 415, message: "The request body must be application/json." },
  range_not_satisfiable: { status: 416, message: "The requested range is outside the file." },
  too_many_subscriptions: { status: 429, message: "The WebSocket connection holds as many subscriptions as it may." },
  headers_too_large: { status: 431, message: "The request's headers are larger than the limit." },
  internal: { status: 500, message: "An internal error occurred." },
  engine_unavailable: { status: 503, message: "The storage engine does not answer." },
  shutting_down: { status: 503, message: "The server is shutting down." },
  // Codes of `retrying` and `failed` entries: a model call that failed (and `unknown_model` above).
  model_error: { status: null, message: "The model failed." },
  model_timeout: { status: null, message: "The model did not answer in time." },
  model_unavailable: { status: null, message: "The model could not be reached." },
  model_rate_limited: { status: null, message: "The model's provider is rate limiting." },
  model_rejected: { status: null, message: "The model's provider refused the request." },
  // The end of an answer on a door that can only append (decision 025).
  answer_diverged: {
    status: null,
    message:
      "The answer's text was written again differently after a failure; this format cannot take back what it sent. Read the answer again.",
  },
  // The client SDK's own, for failures that never reached the API (and `http_<status>` below).
  network_error: { status: null, message: "The server could not be reached." },
  protocol_error: { status: null, message: "The server's answer does not follow the protocol." },
  client_closed: { status: null, message: "The client was closed." },
} as const satisfies Record<string, { status: number | null; message: string }>;

type Registry = typeof ERROR_CODES;

/**
 * The client SDK's code for a failed response that carries no Lifeline error body (a proxy's page,
 * say): `http_502`, `http_404` … One family, documented as the row `http_<status>`.
 */
export type HttpStatusErrorCode = `http_${number}`;

/** The documented name of the {@link HttpStatusErrorCode} family. */
export const HTTP_STATUS_ERROR_FAMILY = "http_<status>";

/** Every code Lifeline and its SDK use. */
export type ErrorCode = keyof Registry | HttpStatusErrorCode;

/** A code the API answers with: one that has an HTTP status. */
export type ApiErrorCode = { [K in keyof Registry]: Registry[K]["status"] extends number ? K : never }[keyof Registry];

const HTTP_STATUS_ERROR = /^http_[1-5]\d\d$/;

/** Whether `code` is one of the registry's (a code from the network may be anything). */
export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_CODES, code) || HTTP_STATUS_ERROR.test(code);
}

/** The code of a failed response with no Lifeline error body. */
export function httpStatusErrorCode(status: number): HttpStatusErrorCode {
  return `http_${status}`;
}

/** The HTTP status the API answers `code` with; `undefined` for a code that is never an answer's status. */
export function statusOf(code: ErrorCode): number | undefined {
  if (Object.hasOwn(ERROR_CODES, code)) return ERROR_CODES[code as keyof Registry].status ?? undefined;
  return Number(code.slice("http_".length));
}

/** A failure with a stable code, a status and details safe to show to the caller. */
export class LifelineError extends Error {
  readonly code: ApiErrorCode;
  readonly status: number;
  readonly details: unknown;

  constructor(code: ApiErrorCode, message?: string, details?: unknown) {
    super(message ?? ERROR_CODES[code].message);
    this.name = "LifelineError";
    this.code = code;
    this.status = ERROR_CODES[code].status;
    this.details = details;
  }

  toJSON(): { error: { code: ApiErrorCode; message: string; details?: unknown } } {
    return {
      error: {
        code: this.code,
        message: this.message,
        ...(this.details === undefined ? {} : { details: this.details }),
      },
    };
  }
}
