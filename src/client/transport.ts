import { ENTRY_TYPES, type Entry, type EntryType } from "../core/entries.ts";
import type { ErrorCode } from "../core/errors.ts";
import { isRetryableStatus } from "../core/retry.ts";
import { errorFromResponse, retryAfterMs, type LifelineClientError } from "./errors.ts";

/** The transports the SDK speaks, in the order a client tries them by default. */
export type TransportName = "sse" | "websocket" | "long-poll";

export const TRANSPORT_NAMES: readonly TransportName[] = ["sse", "websocket", "long-poll"];

/** What a transport reports while a connection is open. Calls after the session's signal aborted are ignored. */
export interface TransportSink {
  /** Bytes or a heartbeat arrived: the link is alive (feeds the heartbeat watchdog). */
  alive(): void;
  /** The server accepted the request; entries follow. */
  opened(): void;
  /** The next entry as the server sent it, with its opaque cursor. */
  entry(entry: Entry, cursor: string | undefined): void;
  /** Drop the text: the log follows from offset 1. `cursor` is what the server sent with it, if anything. */
  reset(cursor: string | undefined): void;
}

/** How a connection ended. Transports report outcomes; they never throw. */
export type SessionEnd =
  /** The server says there is nothing more (204, or the `end` frame). */
  | { readonly kind: "ended" }
  /** The server closed the connection; whether that was the end depends on what came before. */
  | { readonly kind: "closed" }
  /** A network failure, a 5xx, a timeout or an abort: worth another connection. */
  | { readonly kind: "dropped"; readonly reason: string; readonly retryAfterMs?: number }
  /** The gateway's final answer (404 `generation_not_found`, another 4xx): following cannot succeed. */
  | { readonly kind: "fatal"; readonly error: LifelineClientError }
  /**
   * Refused before it reached the gateway (a proxy's 4xx page), or the gateway does not serve this
   * transport: another transport may get through.
   */
  | { readonly kind: "blocked"; readonly error: LifelineClientError };

/**
 * One way to follow a log. A session delivers the entries after `cursor` until the server ends it,
 * the link fails, or `signal` aborts: one event stream (SSE), one subscription on the client's
 * shared socket (WebSocket), or a chain of requests (long-poll). Reconnecting, ordering and
 * folding belong to the follower, not to the transport.
 */
export interface Transport {
  readonly name: TransportName;
  /** `token`: the read token that opens generation `id` (decision 034), when the deployment asks for one. */
  session(id: string, cursor: string | undefined, sink: TransportSink, signal: AbortSignal, token?: string): Promise<SessionEnd>;
  /** Lets go of what the transport holds between sessions (the shared WebSocket). */
  close?(): void;
}

const TYPES: ReadonlySet<string> = new Set<EntryType>(ENTRY_TYPES);

/** An entry from the wire, checked for the fields the follower relies on; `undefined` when malformed. */
export function parseEntry(value: unknown): Entry | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const entry = value as { offset?: unknown; type?: unknown; text?: unknown; toOffset?: unknown };
  if (typeof entry.offset !== "number" || !Number.isSafeInteger(entry.offset) || entry.offset < 1) return undefined;
  if (typeof entry.type !== "string" || !TYPES.has(entry.type)) return undefined;
  if (entry.type === "delta" && typeof entry.text !== "string") return undefined;
  if (entry.type === "rewind" && typeof entry.toOffset !== "number") return undefined;
  return value as Entry;
}

/** Codes with which the gateway says that it does not serve a route: the transport, not the answer, is the problem. */
const NOT_SERVED: ReadonlySet<ErrorCode> = new Set(["not_found"]);

/** How a session ends whose request got an HTTP answer other than the one it can read. */
export async function failedSession(res: Response): Promise<SessionEnd> {
  const error = await errorFromResponse(res).catch(() => undefined);
  if (error && !isRetryableStatus(res.status)) {
    const fromGateway = !error.code.startsWith("http_") && !NOT_SERVED.has(error.code);
    return fromGateway ? { kind: "fatal", error } : { kind: "blocked", error };
  }
  const after = retryAfterMs(res);
  return { kind: "dropped", reason: `HTTP ${res.status}`, ...(after === undefined ? {} : { retryAfterMs: after }) };
}

/** The reason an aborted signal carries, as text. */
export function reasonOf(error: unknown): string {
  if (error instanceof Error) return error.message;
  return typeof error === "string" ? error : "aborted";
}
