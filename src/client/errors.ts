import { ERROR_CODES } from "../core/errors.ts";

/** A failure the SDK cannot recover from by reconnecting: the server's `code`, or a client-side one. */
export class LifelineClientError extends Error {
  /** The server's stable error code (`generation_not_found`, …) or `network_error`, `protocol_error`. */
  readonly code: string;
  /** The HTTP status, when the failure came with one. */
  readonly status: number | undefined;

  constructor(code: string, message: string, status?: number) {
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

/** Whether an error code of the server (over WebSocket, where there is no status) is worth another try. */
export function isRetryableCode(code: string): boolean {
  const known = (ERROR_CODES as Record<string, { status: number } | undefined>)[code];
  return known === undefined || isRetryableStatus(known.status);
}

/** The `{"error":{code,message}}` body of a failed response as an error; tolerant of any other body. */
export async function errorFromResponse(res: Response): Promise<LifelineClientError> {
  let code = `http_${res.status}`;
  let message = `HTTP ${res.status}`;
  try {
    const body = (await res.json()) as { error?: { code?: unknown; message?: unknown } };
    if (typeof body.error?.code === "string") code = body.error.code;
    if (typeof body.error?.message === "string") message = body.error.message;
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
