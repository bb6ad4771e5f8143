/**
 * The header and query names of the Durable Streams protocol (PROTOCOL.md §5), as the gateway
 * reads and writes them; Node gives request headers in lower case.
 */
export const STREAM_HEADERS = {
  nextOffset: "stream-next-offset",
  cursor: "stream-cursor",
  upToDate: "stream-up-to-date",
  closed: "stream-closed",
  seq: "stream-seq",
  ttl: "stream-ttl",
  expiresAt: "stream-expires-at",
  sseDataEncoding: "stream-sse-data-encoding",
  forkedFrom: "stream-forked-from",
  forkOffset: "stream-fork-offset",
  forkSubOffset: "stream-fork-sub-offset",
  producerId: "producer-id",
  producerEpoch: "producer-epoch",
  producerSeq: "producer-seq",
  producerExpectedSeq: "producer-expected-seq",
  producerReceivedSeq: "producer-received-seq",
} as const;

export const STREAM_QUERY = {
  offset: "offset",
  live: "live",
  cursor: "cursor",
} as const;

/** The `live` modes of a read. */
export type LiveMode = "long-poll" | "sse";

/** The SSE control event's fields. */
export interface StreamControl {
  readonly streamNextOffset: string;
  readonly streamCursor?: string;
  readonly upToDate?: true;
  readonly streamClosed?: true;
}

/** The protocol's request headers a browser page sends, and its response headers a page reads. */
export const STREAM_CORS = {
  requestHeaders: [
    "if-none-match",
    "stream-seq",
    "stream-ttl",
    "stream-expires-at",
    "stream-closed",
    "producer-id",
    "producer-epoch",
    "producer-seq",
    "stream-forked-from",
    "stream-fork-offset",
    "stream-fork-sub-offset",
  ],
  responseHeaders: [
    "stream-next-offset",
    "stream-cursor",
    "stream-up-to-date",
    "stream-closed",
    "producer-epoch",
    "producer-seq",
    "producer-expected-seq",
    "producer-received-seq",
    "stream-sse-data-encoding",
    "etag",
    "location",
  ],
} as const;
