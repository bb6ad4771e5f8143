/**
 * Every error code Lifeline answers with, its HTTP status and its default message, in one place.
 * Callers branch on `code`, never on a message.
 */
export const ERROR_CODES = {
  invalid_json: { status: 400, message: "The request body is not valid JSON." },
  invalid_request: { status: 400, message: "The request does not match the expected schema." },
  invalid_cursor: { status: 400, message: "The cursor is not a valid position in this log." },
  invalid_header: { status: 400, message: "A request header has an invalid value." },
  unknown_model: { status: 400, message: "The model is not configured." },
  not_found: { status: 404, message: "No such route." },
  generation_not_found: { status: 404, message: "No generation has this id." },
  method_not_allowed: { status: 405, message: "The method is not allowed on this route." },
  idempotency_key_reused: {
    status: 409,
    message: "This Idempotency-Key was already used with a different request.",
  },
  already_finished: { status: 409, message: "The generation has already finished." },
  body_too_large: { status: 413, message: "The request body is larger than the limit." },
  unsupported_media_type: { status: 415, message: "The request body must be application/json." },
  too_many_subscriptions: { status: 429, message: "The WebSocket connection holds as many subscriptions as it may." },
  engine_unavailable: { status: 503, message: "The storage engine does not answer." },
  shutting_down: { status: 503, message: "The server is shutting down." },
  internal: { status: 500, message: "An internal error occurred." },
  // Codes that end a generation (`failed` entries); they are never HTTP answers of their own.
  model_error: { status: 502, message: "The model failed." },
  model_timeout: { status: 504, message: "The model did not answer in time." },
  model_unavailable: { status: 503, message: "The model could not be reached." },
  model_rate_limited: { status: 429, message: "The model's provider is rate limiting." },
  model_rejected: { status: 502, message: "The model's provider refused the request." },
  worker_lost: { status: 500, message: "The worker lost the generation." },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERROR_CODES;

/** A failure with a stable code, a status and details safe to show to the caller. */
export class LifelineError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: unknown;

  constructor(code: ErrorCode, message?: string, details?: unknown) {
    super(message ?? ERROR_CODES[code].message);
    this.name = "LifelineError";
    this.code = code;
    this.status = ERROR_CODES[code].status;
    this.details = details;
  }

  toJSON(): { error: { code: string; message: string; details?: unknown } } {
    return {
      error: {
        code: this.code,
        message: this.message,
        ...(this.details === undefined ? {} : { details: this.details }),
      },
    };
  }
}
