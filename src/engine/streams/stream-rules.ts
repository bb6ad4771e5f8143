import type { ProducerStamp, StoredStream, StreamChunk, StreamRecord } from "./port.ts";

/**
 * The rules of the Durable Streams protocol (PROTOCOL.md §4, §5) as pure decisions on a record:
 * what an append, a close, a create or a delete does to a stream, and what it answers. No I/O;
 * `streams.ts` commits what these decide.
 */

/** The media type without parameters, lower case: what two content types are compared by. */
export function mediaTypeOf(contentType: string): string {
  return (contentType.split(";")[0] ?? "").trim().toLowerCase();
}

export function isJsonStream(record: Pick<StreamRecord, "contentType">): boolean {
  return mediaTypeOf(record.contentType) === "application/json";
}

/** Whether a stream's TTL or expiry time has passed at `now`. */
export function isExpired(stored: StoredStream, now: number): boolean {
  const { record } = stored;
  if (record.expiresAtMs !== undefined && now >= record.expiresAtMs) return true;
  if (record.ttlSeconds !== undefined && now >= Math.max(stored.touchedAt, record.createdAt) + record.ttlSeconds * 1000) return true;
  return false;
}

/** What an idempotent producer's request is, against the producer's state (PROTOCOL.md §5.2.1). */
export type ProducerCheck =
  | { readonly kind: "accepted"; readonly state: { readonly epoch: number; readonly seq: number } }
  | { readonly kind: "duplicate"; readonly lastSeq: number }
  | { readonly kind: "staleEpoch"; readonly epoch: number }
  | { readonly kind: "epochNeedsSeqZero" }
  | { readonly kind: "seqGap"; readonly expected: number; readonly received: number };

export function checkProducer(record: StreamRecord, stamp: ProducerStamp): ProducerCheck {
  const state = Object.hasOwn(record.producers, stamp.id) ? record.producers[stamp.id] : undefined;
  if (!state) {
    return stamp.seq === 0
      ? { kind: "accepted", state: { epoch: stamp.epoch, seq: 0 } }
      : { kind: "seqGap", expected: 0, received: stamp.seq };
  }
  if (stamp.epoch < state.epoch) return { kind: "staleEpoch", epoch: state.epoch };
  if (stamp.epoch > state.epoch) {
    return stamp.seq === 0 ? { kind: "accepted", state: { epoch: stamp.epoch, seq: 0 } } : { kind: "epochNeedsSeqZero" };
  }
  if (stamp.seq <= state.seq) return { kind: "duplicate", lastSeq: state.seq };
  if (stamp.seq === state.seq + 1) return { kind: "accepted", state: { epoch: stamp.epoch, seq: stamp.seq } };
  return { kind: "seqGap", expected: state.seq + 1, received: stamp.seq };
}

/** An append, a close, or both at once (a POST). */
export interface AppendRequest {
  /** The request's `Content-Type`; compared only when there is data. */
  readonly contentType: string | undefined;
  /** The data as one chunk (a JSON body already validated and flattened); `undefined`: close only. */
  readonly data: Buffer | undefined;
  readonly streamSeq?: string;
  readonly producer?: ProducerStamp;
  readonly close: boolean;
}

export type AppendOutcome =
  | { readonly kind: "appended"; readonly tail: number; readonly closed: boolean; readonly wrote: boolean; readonly producerSeq?: number }
  | { readonly kind: "duplicate"; readonly tail: number; readonly closed: boolean; readonly producerSeq: number }
  | { readonly kind: "closed"; readonly tail: number }
  | { readonly kind: "contentTypeMismatch" }
  | { readonly kind: "streamSeqConflict" }
  | { readonly kind: "staleEpoch"; readonly epoch: number }
  | { readonly kind: "epochNeedsSeqZero" }
  | { readonly kind: "seqGap"; readonly expected: number; readonly received: number };

/** Producers a stream remembers at most; past it, the one least recently written is forgotten. */
export const MAX_PRODUCERS_PER_STREAM = 1024;

/**
 * What `request` does to `record`: the outcome, and the record and chunk to commit when it writes.
 * Precedence as the protocol recommends: closed first, then content type, producer, `Stream-Seq`.
 */
export function planAppend(
  record: StreamRecord,
  request: AppendRequest,
): { outcome: AppendOutcome; next?: StreamRecord; chunk?: StreamChunk } {
  const stamp = request.producer;
  if (record.closed) {
    const same =
      stamp &&
      record.closedBy &&
      record.closedBy.id === stamp.id &&
      record.closedBy.epoch === stamp.epoch &&
      record.closedBy.seq === stamp.seq;
    if (same) return { outcome: { kind: "duplicate", tail: record.tail, closed: true, producerSeq: stamp.seq } };
    // Closing a closed stream again is idempotent; appending to it is not.
    if (request.data === undefined && !stamp) return { outcome: { kind: "appended", tail: record.tail, closed: true, wrote: false } };
    return { outcome: { kind: "closed", tail: record.tail } };
  }
  if (
    request.data !== undefined &&
    request.contentType !== undefined &&
    mediaTypeOf(request.contentType) !== mediaTypeOf(record.contentType)
  ) {
    return { outcome: { kind: "contentTypeMismatch" } };
  }
  let producers = record.producers;
  if (stamp) {
    const check = checkProducer(record, stamp);
    if (check.kind === "duplicate") return { outcome: { kind: "duplicate", tail: record.tail, closed: false, producerSeq: check.lastSeq } };
    if (check.kind !== "accepted") return { outcome: check };
    producers = rememberProducer(record.producers, stamp.id, check.state);
  }
  if (request.streamSeq !== undefined && record.lastSeq !== undefined && request.streamSeq <= record.lastSeq) {
    return { outcome: { kind: "streamSeqConflict" } };
  }
  const tail = request.data === undefined ? record.tail : record.tail + 1;
  const next: StreamRecord = {
    ...record,
    version: record.version + 1,
    tail,
    producers,
    ...(request.streamSeq !== undefined ? { lastSeq: request.streamSeq } : {}),
    ...(request.close ? { closed: true, ...(stamp ? { closedBy: stamp } : {}) } : {}),
  };
  const outcome: AppendOutcome = {
    kind: "appended",
    tail,
    closed: request.close,
    wrote: request.data !== undefined,
    ...(stamp ? { producerSeq: stamp.seq } : {}),
  };
  return request.data === undefined ? { outcome, next } : { outcome, next, chunk: { position: tail, data: request.data } };
}

/** The producers with `id` set to `state`, the most recently written last, at most the limit. */
function rememberProducer(
  producers: StreamRecord["producers"],
  id: string,
  state: { epoch: number; seq: number },
): StreamRecord["producers"] {
  const entries = Object.entries(producers).filter(([known]) => known !== id);
  entries.push([id, state]);
  return Object.fromEntries(entries.slice(-MAX_PRODUCERS_PER_STREAM));
}

/** The configuration a PUT asks for, compared with a stream that already stands. */
export interface StreamConfig {
  readonly contentType: string;
  readonly ttlSeconds?: number;
  readonly expiresAt?: string;
  readonly closed: boolean;
  readonly forkedFrom?: string;
  readonly forkPosition?: number;
  readonly forkSubOffset?: number;
}

/** Whether a PUT of `config` is the same as the stream that stands (200), or a conflict (409). */
export function sameConfig(record: StreamRecord, config: StreamConfig): boolean {
  return (
    mediaTypeOf(record.contentType) === mediaTypeOf(config.contentType) &&
    record.ttlSeconds === config.ttlSeconds &&
    record.expiresAt === config.expiresAt &&
    record.closed === config.closed &&
    record.forkedFrom === config.forkedFrom &&
    (config.forkPosition === undefined || record.forkPosition === config.forkPosition) &&
    (record.forkSubOffset ?? 0) === (config.forkSubOffset ?? 0)
  );
}

/** A fork's TTL or expiry (PROTOCOL.md §4.2): its own when asked for, else the source's. */
export function forkExpiry(
  asked: { ttlSeconds?: number; expiresAt?: string; expiresAtMs?: number },
  source: StreamRecord,
): { ttlSeconds?: number; expiresAt?: string; expiresAtMs?: number } {
  if (asked.ttlSeconds !== undefined) return { ttlSeconds: asked.ttlSeconds };
  if (asked.expiresAt !== undefined) return asked;
  if (source.ttlSeconds !== undefined) return { ttlSeconds: source.ttlSeconds };
  if (source.expiresAt !== undefined) {
    return { expiresAt: source.expiresAt, ...(source.expiresAtMs !== undefined ? { expiresAtMs: source.expiresAtMs } : {}) };
  }
  return {};
}
