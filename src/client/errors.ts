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

/** 408, 429 and every 5xx are worth another try; other statuses are the caller's mistake or final. */
export function isRetryableStatus(status: number): boolean {
  return status >= 500 || status === 408 || status === 429;
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

/** `Retry-After` in milliseconds when it is a number of seconds. */
export function retryAfterMs(res: Response): number | undefined {
  const value = res.headers.get("retry-after");
  if (value === null || !/^\d+$/.test(value.trim())) return undefined;
  return Number(value) * 1000;
}
