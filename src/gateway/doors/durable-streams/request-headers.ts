import type { IncomingHttpHeaders } from "node:http";
import { LifelineError } from "../../../core/errors.ts";
import { STREAM_HEADERS } from "../../../core/stream-headers.ts";
import type { ProducerStamp } from "../../../engine/streams/port.ts";

/** The longest TTL a stream may ask for: ten years, in seconds. */
export const MAX_TTL_SECONDS = 10 * 365 * 24 * 3600;
/** The longest `Producer-Id`, in bytes. */
export const MAX_PRODUCER_ID_BYTES = 256;
/** The longest `Stream-Seq`, in bytes. */
export const MAX_STREAM_SEQ_BYTES = 256;
/** The longest `Content-Type` a stream may have, in bytes. */
export const MAX_CONTENT_TYPE_BYTES = 256;

const DECIMAL = /^(0|[1-9]\d*)$/;
const MEDIA_TYPE = /^[\w!#$&^.+-]+\/[\w!#$&^.+-]+(\s*;.*)?$/;

/** One header's value; a header sent twice is refused. */
function single(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  if (Array.isArray(value)) throw new LifelineError("invalid_header", `${name} is sent more than once.`);
  return value;
}

/** `Stream-Closed` counts only when it is `true` (any case); other values are as if absent. */
export function closedHeader(headers: IncomingHttpHeaders): boolean {
  const value = headers[STREAM_HEADERS.closed];
  return typeof value === "string" && value.trim().toLowerCase() === "true";
}

/** The request's content type when it is a media type; `undefined` when absent or blank. */
export function contentTypeHeader(headers: IncomingHttpHeaders): string | undefined {
  const value = headers["content-type"]?.trim();
  if (!value) return undefined;
  if (Buffer.byteLength(value) > MAX_CONTENT_TYPE_BYTES || !MEDIA_TYPE.test(value)) {
    throw new LifelineError("invalid_header", "Content-Type is not a media type.");
  }
  return value;
}

/** A non-negative decimal integer no larger than `max`, or `undefined` when the header is absent. */
function integerHeader(headers: IncomingHttpHeaders, name: string, max: number): number | undefined {
  const value = single(headers, name);
  if (value === undefined) return undefined;
  const n = DECIMAL.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n > max) throw new LifelineError("invalid_header", `${name} must be a whole number from 0 to ${max}.`);
  return n;
}

export interface Expiry {
  readonly ttlSeconds?: number;
  readonly expiresAt?: string;
  readonly expiresAtMs?: number;
}

/** `Stream-TTL` (decimal seconds, no sign or leading zero) or `Stream-Expires-At` (RFC 3339), not both. */
export function expiryHeaders(headers: IncomingHttpHeaders): Expiry {
  const ttlText = single(headers, STREAM_HEADERS.ttl);
  const expiresAt = single(headers, STREAM_HEADERS.expiresAt);
  if (ttlText !== undefined && expiresAt !== undefined) {
    throw new LifelineError("invalid_header", "Stream-TTL and Stream-Expires-At cannot both be given.");
  }
  if (ttlText !== undefined) return { ttlSeconds: integerHeader(headers, STREAM_HEADERS.ttl, MAX_TTL_SECONDS) as number };
  if (expiresAt === undefined) return {};
  const at = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/i.test(expiresAt) ? Date.parse(expiresAt) : NaN;
  if (!Number.isFinite(at)) throw new LifelineError("invalid_header", "Stream-Expires-At is not an RFC 3339 time.");
  return { expiresAt, expiresAtMs: at };
}

/** `Producer-Id`, `Producer-Epoch` and `Producer-Seq`: all three or none. */
export function producerHeaders(headers: IncomingHttpHeaders): ProducerStamp | undefined {
  const id = single(headers, STREAM_HEADERS.producerId);
  const epochText = single(headers, STREAM_HEADERS.producerEpoch);
  const seqText = single(headers, STREAM_HEADERS.producerSeq);
  if (id === undefined && epochText === undefined && seqText === undefined) return undefined;
  if (id === undefined || epochText === undefined || seqText === undefined) {
    throw new LifelineError("invalid_header", "Producer-Id, Producer-Epoch and Producer-Seq must be sent together.");
  }
  if (id.length === 0 || Buffer.byteLength(id) > MAX_PRODUCER_ID_BYTES) {
    throw new LifelineError("invalid_header", `Producer-Id must be 1 to ${MAX_PRODUCER_ID_BYTES} bytes.`);
  }
  const epoch = integerHeader(headers, STREAM_HEADERS.producerEpoch, Number.MAX_SAFE_INTEGER) as number;
  const seq = integerHeader(headers, STREAM_HEADERS.producerSeq, Number.MAX_SAFE_INTEGER) as number;
  return { id, epoch, seq };
}

/** `Stream-Seq`: an opaque string compared byte-wise. */
export function streamSeqHeader(headers: IncomingHttpHeaders): string | undefined {
  const value = single(headers, STREAM_HEADERS.seq);
  if (value === undefined) return undefined;
  if (value.length === 0 || Buffer.byteLength(value) > MAX_STREAM_SEQ_BYTES) {
    throw new LifelineError("invalid_header", `Stream-Seq must be 1 to ${MAX_STREAM_SEQ_BYTES} bytes.`);
  }
  return value;
}

export interface ForkHeaders {
  readonly from: string;
  readonly offset?: string;
  readonly subOffset?: number;
}

/** `Stream-Forked-From`, `Stream-Fork-Offset` and `Stream-Fork-Sub-Offset` of a PUT. */
export function forkHeaders(headers: IncomingHttpHeaders): ForkHeaders | undefined {
  const from = single(headers, STREAM_HEADERS.forkedFrom);
  const offset = single(headers, STREAM_HEADERS.forkOffset);
  const subOffset = integerHeader(headers, STREAM_HEADERS.forkSubOffset, Number.MAX_SAFE_INTEGER);
  if (from === undefined) {
    if (offset !== undefined || subOffset !== undefined) {
      throw new LifelineError("invalid_header", "Stream-Fork-Offset and Stream-Fork-Sub-Offset need Stream-Forked-From.");
    }
    return undefined;
  }
  if (subOffset !== undefined && subOffset > 0 && offset === undefined) {
    throw new LifelineError("invalid_header", "Stream-Fork-Sub-Offset needs Stream-Fork-Offset.");
  }
  return { from, ...(offset !== undefined ? { offset } : {}), ...(subOffset !== undefined ? { subOffset } : {}) };
}
