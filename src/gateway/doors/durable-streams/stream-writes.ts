import type { FastifyReply, FastifyRequest } from "fastify";
import { LifelineError } from "../../../core/errors.ts";
import { STREAM_HEADERS } from "../../../core/stream-headers.ts";
import { OFFSET_START, formatOffset, parseOffset } from "../../../core/stream-offsets.ts";
import { STREAM_ROOT, isStreamName } from "../../../core/stream-paths.ts";
import type { StreamRecord } from "../../../engine/streams/port.ts";
import { mediaTypeOf } from "../../../engine/streams/stream-rules.ts";
import type { CreateOutcome, StreamAppendOutcome, Streams } from "../../../engine/streams/streams.ts";
import { jsonChunk } from "./json-messages.ts";
import { sendStreamError } from "./replies.ts";
import { closedHeader, contentTypeHeader, expiryHeaders, forkHeaders, producerHeaders, streamSeqHeader } from "./request-headers.ts";

/** The default content type of a stream created without one (PROTOCOL.md §5.1). */
const DEFAULT_CONTENT_TYPE = "application/octet-stream";

function bodyOf(request: FastifyRequest): Buffer {
  return Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
}

/** A body's data as one chunk for a stream of `contentType`: JSON is validated and flattened. */
function chunkOf(body: Buffer, contentType: string, create: boolean): Buffer | undefined {
  if (body.length === 0) return undefined;
  return mediaTypeOf(contentType) === "application/json" ? jsonChunk(body, create) : body;
}

/** A stream name from `Stream-Forked-From`: its URL path (`/v1/stream/<name>`) or the bare name. */
function sourceName(value: string): string {
  const name = value.startsWith(STREAM_ROOT) ? value.slice(STREAM_ROOT.length) : value.replace(/^\/+/, "");
  if (!isStreamName(name)) throw new LifelineError("invalid_stream_name", "Stream-Forked-From does not name a stream.");
  return name;
}

/**
 * `PUT`: creates a stream, a fork, or confirms one that stands with the same configuration.
 * `name` is the stream's name in its URL; `stored` gives where a name is kept (the caller's tenant).
 */
export async function createStream(
  request: FastifyRequest,
  reply: FastifyReply,
  streams: Streams,
  name: string,
  stored: (name: string) => string,
): Promise<void> {
  const headers = request.headers;
  const fork = forkHeaders(headers);
  const expiry = expiryHeaders(headers);
  const closed = closedHeader(headers);
  let contentType = contentTypeHeader(headers) ?? (fork ? "" : DEFAULT_CONTENT_TYPE);
  let forkPosition: number | undefined;
  let from: string | undefined;
  if (fork) {
    from = stored(sourceName(fork.from));
    if (fork.offset !== undefined) {
      const offset = fork.offset === OFFSET_START ? { position: 0, attempt: 0 } : parseOffset(fork.offset);
      if (!offset || offset.attempt !== 0) throw new LifelineError("invalid_offset", "Stream-Fork-Offset is not an offset of the source.");
      forkPosition = offset.position;
    }
    // A fork without a content type has its source's; the body is read as that type.
    if (contentType === "") {
      const source = await streams.lookup(from);
      if (source.kind === "found") contentType = source.stored.record.contentType;
    }
  }
  const data = chunkOf(bodyOf(request), contentType || DEFAULT_CONTENT_TYPE, true);
  const outcome = await streams.create(stored(name), {
    contentType,
    ...expiry,
    closed,
    data,
    ...(from !== undefined ? { forkedFrom: from } : {}),
    ...(forkPosition !== undefined ? { forkPosition } : {}),
    ...(fork?.subOffset ? { forkSubOffset: fork.subOffset } : {}),
  });
  if (outcome.kind === "created" || outcome.kind === "exists") {
    const location = `${request.protocol}://${request.host}${STREAM_ROOT}${name}`;
    return void reply
      .code(outcome.kind === "created" ? 201 : 200)
      .headers({ ...createdHeaders(outcome.record), ...(outcome.kind === "created" ? { location } : {}) })
      .send();
  }
  sendStreamError(reply, createError(outcome));
}

function createdHeaders(record: StreamRecord): Record<string, string> {
  return {
    "content-type": record.contentType,
    [STREAM_HEADERS.nextOffset]: formatOffset(record.tail),
    ...(record.closed ? { [STREAM_HEADERS.closed]: "true" } : {}),
  };
}

function createError(outcome: Exclude<CreateOutcome, { record: StreamRecord }>): LifelineError {
  switch (outcome.kind) {
    case "configConflict":
      return new LifelineError("stream_exists");
    case "nameHeldByForks":
      return new LifelineError("fork_source_gone", "A deleted stream that forks still hold has this name.");
    case "sourceNotFound":
      return new LifelineError("fork_source_not_found");
    case "sourceGone":
      return new LifelineError("fork_source_gone");
    case "forkContentTypeMismatch":
      return new LifelineError("content_type_mismatch", "A fork's content type must be its source's.");
    case "forkOffsetBeyondTail":
      return new LifelineError("fork_offset_invalid", "Stream-Fork-Offset is past the source's tail.");
    case "subOffsetInvalid":
      return new LifelineError("fork_offset_invalid", "Stream-Fork-Sub-Offset is past the next message of the source.");
  }
}

/** `POST`: appends, closes, or both, with `Stream-Seq` and idempotent producers. */
export async function appendStream(request: FastifyRequest, reply: FastifyReply, streams: Streams, name: string): Promise<void> {
  const headers = request.headers;
  const producer = producerHeaders(headers);
  const streamSeq = streamSeqHeader(headers);
  const close = closedHeader(headers);
  const body = bodyOf(request);
  if (body.length === 0 && !close) throw new LifelineError("empty_body");
  const contentType = body.length > 0 ? contentTypeHeader(headers) : undefined;
  if (body.length > 0 && contentType === undefined) throw new LifelineError("invalid_header", "An append with data needs a Content-Type.");
  let data: Buffer | undefined;
  try {
    data = contentType === undefined ? undefined : chunkOf(body, contentType, false);
  } catch (error) {
    // A conflict the protocol ranks first (closed, another content type) wins over a bad body.
    const found = await streams.lookup(name);
    if (found.kind === "notFound") throw new LifelineError("stream_not_found");
    if (found.kind === "gone") throw new LifelineError("stream_gone");
    const record = found.stored.record;
    if (record.closed) return sendStreamError(reply, new LifelineError("stream_closed"), closedHeaders(record.tail));
    if (mediaTypeOf(record.contentType) !== mediaTypeOf(contentType ?? "")) throw new LifelineError("content_type_mismatch");
    throw error;
  }
  const outcome = await streams.append(name, {
    contentType,
    data,
    close,
    ...(streamSeq !== undefined ? { streamSeq } : {}),
    ...(producer ? { producer } : {}),
  });
  answerAppend(reply, outcome, producer?.epoch);
}

function closedHeaders(tail: number): Record<string, string> {
  return { [STREAM_HEADERS.closed]: "true", [STREAM_HEADERS.nextOffset]: formatOffset(tail) };
}

function answerAppend(reply: FastifyReply, outcome: StreamAppendOutcome, epoch: number | undefined): void {
  const producerEcho = (seq: number | undefined): Record<string, string> =>
    epoch === undefined || seq === undefined
      ? {}
      : { [STREAM_HEADERS.producerEpoch]: String(epoch), [STREAM_HEADERS.producerSeq]: String(seq) };
  switch (outcome.kind) {
    case "appended":
      // 200 tells a producer its data was new; a close without data answers 204 like any close.
      return void reply
        .code(epoch === undefined || !outcome.wrote ? 204 : 200)
        .headers({
          [STREAM_HEADERS.nextOffset]: formatOffset(outcome.tail),
          ...(outcome.closed ? { [STREAM_HEADERS.closed]: "true" } : {}),
          ...producerEcho(outcome.producerSeq),
        })
        .send();
    case "duplicate":
      return void reply
        .code(204)
        .headers({
          [STREAM_HEADERS.nextOffset]: formatOffset(outcome.tail),
          ...(outcome.closed ? { [STREAM_HEADERS.closed]: "true" } : {}),
          ...producerEcho(outcome.producerSeq),
        })
        .send();
    case "closed":
      return sendStreamError(reply, new LifelineError("stream_closed"), closedHeaders(outcome.tail));
    case "contentTypeMismatch":
      return sendStreamError(reply, new LifelineError("content_type_mismatch"));
    case "streamSeqConflict":
      return sendStreamError(reply, new LifelineError("stream_seq_conflict"));
    case "staleEpoch":
      return sendStreamError(reply, new LifelineError("producer_epoch_stale"), { [STREAM_HEADERS.producerEpoch]: String(outcome.epoch) });
    case "epochNeedsSeqZero":
      return sendStreamError(reply, new LifelineError("producer_epoch_needs_seq_zero"));
    case "seqGap":
      return sendStreamError(reply, new LifelineError("producer_seq_gap"), {
        [STREAM_HEADERS.producerExpectedSeq]: String(outcome.expected),
        [STREAM_HEADERS.producerReceivedSeq]: String(outcome.received),
      });
    case "notFound":
      return sendStreamError(reply, new LifelineError("stream_not_found"));
    case "gone":
      return sendStreamError(reply, new LifelineError("stream_gone"));
  }
}

/** `DELETE`: removes the stream (or hides it while forks of it stand). */
export async function deleteStream(reply: FastifyReply, streams: Streams, name: string): Promise<void> {
  const outcome = await streams.delete(name);
  if (outcome === "deleted") return void reply.code(204).send();
  sendStreamError(reply, new LifelineError(outcome === "gone" ? "stream_gone" : "stream_not_found"));
}
