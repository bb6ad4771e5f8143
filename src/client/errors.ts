import { isRetryableStatus, parseRetryAfter } from "../core/retry.ts";
import { httpStatusErrorCode, isErrorCode, statusOf, type ErrorCode } from "../core/errors.ts";

/** A failure the SDK cannot recover from by reconnecting: the server's `code`, or a client-side one. */
export class LifelineClientError extends Error {
  /**
   * The server's stable error code (`generation_not_found`, …), or the SDK's own: `network_error`,
   * `protocol_error`, `client_closed`, or `http_<status>` for a failed response without Lifeline's
   * error body. All of them are in the registry of `core/errors.ts`.
   */
  readonly code: ErrorCode;
  /** The HTTP status, when the failure came with one. */
  readonly status: number | undefined;

  constructor(code: ErrorCode, message: string, status?: number) {
    super(message);
    this.name = "LifelineClientError";
    this.code = code;
    this.status = status;
  }
}

/** Whether an error code of the server (over WebSocket, where there is no status) is worth another try; an unknown one is. */
export function isRetryableCode(code: string): boolean {
  const status = isErrorCode(code) ? statusOf(code) : undefined;
  return status === undefined || isRetryableStatus(status);
}

/**
 * The `{"error":{code,message}}` body of a failed response as an error; tolerant of any other body.
 * A code this SDK does not know (a newer server's) becomes `http_<status>`, its name kept in the message.
 */
export async function errorFromResponse(res: Response): Promise<LifelineClientError> {
  let code: ErrorCode = httpStatusErrorCode(res.status);
  let message = `HTTP ${res.status}`;
  try {
    const body = (await res.json()) as { error?: { code?: unknown; message?: unknown } };
    const sent = body.error?.code;
    if (typeof body.error?.message === "string") message = body.error.message;
    if (typeof sent === "string") {
      if (isErrorCode(sent)) code = sent;
      else message = `${sent}: ${message}`;
    }
  } catch {
    // Not JSON (a proxy's page, say): the status says enough.
  }
  return new LifelineClientError(code, message, res.status);
}

/** `Retry-After` (seconds or an HTTP date) in milliseconds. */
export function retryAfterMs(res: Response): number | undefined {
  return parseRetryAfter(res.headers.get("retry-after"));
}
