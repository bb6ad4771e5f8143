import type { StreamOffset } from "../../../core/stream-offsets.ts";

/**
 * What the door's reads (catch-up, long-poll, SSE, HEAD) are served from: an ordinary stream of
 * the stream store, or a generation's log. One per request; it remembers what it last saw, so
 * `wait` knows what "new" means.
 */
export interface ReadSource {
  /** Where the stream stands now (HEAD, `offset=now`). */
  head(): Promise<SourceHead | SourceFailure>;
  /** Data after `after` (`undefined`: from the start), at most about `maxBytes`. */
  page(after: StreamOffset | undefined, maxBytes: number): Promise<SourcePage | SourceFailure>;
  /** Resolves when the stream may have changed since the last `head` or `page`, or on abort. */
  wait(signal: AbortSignal): Promise<void>;
  /** Records the read for a sliding TTL. */
  touch(): Promise<void>;
}

export interface SourceHead {
  readonly kind: "head";
  readonly contentType: string;
  readonly json: boolean;
  /** Tells one incarnation of the name from another, for ETags. */
  readonly tag: string;
  readonly tailOffset: string;
  readonly closed: boolean;
  readonly ttlSeconds?: number;
  readonly expiresAt?: string;
}

export interface SourcePage {
  readonly kind: "page";
  readonly head: SourceHead;
  /** Stored chunks: bytes, or a JSON stream's comma-joined messages. */
  readonly chunks: readonly Buffer[];
  readonly nextOffset: string;
  /** Every chunk there was is in this page. */
  readonly upToDate: boolean;
  /** Up to date, and the stream is closed: nothing will ever follow. */
  readonly closed: boolean;
}

/** Why a read cannot be served; each maps to one error code. */
export type SourceFailure = {
  readonly kind: "fail";
  readonly code: "stream_not_found" | "stream_gone" | "stream_reset" | "invalid_offset";
  readonly message?: string;
};
