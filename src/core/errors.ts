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
  unauthorized: { status: 401, message: "This deployment needs an API key: send Authorization: Bearer <key>." },
  invalid_api_key: { status: 401, message: "The API key is not valid." },
  api_key_revoked: { status: 401, message: "The API key was revoked." },
  invalid_token: { status: 401, message: "The read token is not valid." },
  token_expired: { status: 401, message: "The read token has expired: get a new one from the server that started the generation." },
  forbidden: { status: 403, message: "The API key may not do this." },
  not_found: { status: 404, message: "No such route." },
  generation_not_found: { status: 404, message: "No generation has this id." },
  request_timeout: { status: 408, message: "The request's headers did not arrive in time." },
  idempotency_key_reused: { status: 409, message: "This Idempotency-Key was already used with a different request." },
  already_finished: { status: 409, message: "The generation has already finished." },
  precondition_failed: { status: 412, message: "A precondition of the request does not hold." },
  body_too_large: { status: 413, message: "The request body is larger than the limit." },
  unsupported_media_type: { status: 415, message: "The request body must be application/json." },
  range_not_satisfiable: { status: 416, message: "The requested range is outside the file." },
  token_budget_spent: {
    status: 429,
    message:
      "This key has spent its model tokens of this minute (each request counts its max_tokens): retry after the time Retry-After says.",
  },
  too_many_streams: { status: 429, message: "This key holds as many open streams as it may: close one first." },
  too_many_answers: { status: 429, message: "This key has as many answers running as it may: start another when one ends." },
  rate_limited: { status: 429, message: "Too many requests with this key: retry after the time Retry-After says." },
  too_many_subscriptions: { status: 429, message: "The WebSocket connection holds as many subscriptions as it may." },
  headers_too_large: { status: 431, message: "The request's headers are larger than the limit." },
  internal: { status: 500, message: "An internal error occurred." },
  engine_unavailable: { status: 503, message: "The storage engine does not answer." },
  shutting_down: { status: 503, message: "The server is shutting down." },
  // The OpenAI-compatible door (docs/protocols/openai.md).
  unsupported_parameter: {
    status: 400,
    message: "The request asks for something Lifeline cannot honour (tools, several choices, parts that are not text…).",
  },
  generation_cancelled: { status: 409, message: "The generation was cancelled before it finished." },
  generation_failed: { status: 502, message: "The generation failed: the model's error is in `details`." },
  // The Durable Streams door (docs/protocols/durable-streams.md).
  invalid_offset: { status: 400, message: "The offset is not one this stream gave out." },
  invalid_stream_name: { status: 400, message: "The stream name is not valid." },
  empty_body: { status: 400, message: "The append carries no data and does not close the stream." },
  empty_json_array: { status: 400, message: "An append to a JSON stream must carry at least one message." },
  producer_epoch_needs_seq_zero: { status: 400, message: "A new producer epoch must start at sequence 0." },
  fork_offset_invalid: { status: 400, message: "The fork offset or sub-offset is past what the source stream holds." },
  producer_epoch_stale: { status: 403, message: "A newer epoch of this producer has written to the stream." },
  stream_not_found: { status: 404, message: "No stream has this name." },
  fork_source_not_found: { status: 404, message: "The stream to fork from does not exist." },
  stream_read_only: { status: 405, message: "This stream is a generation's log: it is read-only." },
  stream_exists: { status: 409, message: "A stream with another configuration already has this name." },
  stream_closed: { status: 409, message: "The stream is closed: nothing more can be appended." },
  content_type_mismatch: { status: 409, message: "The content type is not the stream's." },
  stream_seq_conflict: { status: 409, message: "Stream-Seq is not above the last one accepted." },
  producer_seq_gap: { status: 409, message: "The producer's sequence skips a number." },
  fork_source_gone: { status: 409, message: "The stream to fork from, or the name asked for, is held by a deleted stream's forks." },
  stream_gone: { status: 410, message: "The stream was deleted; forks of it still stand." },
  stream_reset: {
    status: 410,
    message: "The entry this offset follows no longer stands (a failover lost it and another attempt wrote there): read again from -1.",
  },
  // The AI SDK door (docs/protocols/ai-sdk.md).
  invalid_chat_id: { status: 400, message: "The chat id must be 1 to 128 of A-Z a-z 0-9 _ - . : ~, and not . or ..." },
  unsupported_message_part: { status: 400, message: "A message part cannot be given to the model: this door sends text parts only." },
  chat_not_found: { status: 404, message: "No answer was started for this chat, or it has expired." },
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
  /** For a limit (429): when to try again, sent as `Retry-After`. */
  readonly retryAfterSeconds: number | undefined;

  constructor(code: ApiErrorCode, message?: string, details?: unknown, options: { readonly retryAfterSeconds?: number } = {}) {
    super(message ?? ERROR_CODES[code].message);
    this.name = "LifelineError";
    this.code = code;
    this.status = ERROR_CODES[code].status;
    this.details = details;
    this.retryAfterSeconds = options.retryAfterSeconds;
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
