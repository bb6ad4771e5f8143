/**
 * The W3C Trace Context `traceparent` (https://www.w3.org/TR/trace-context/#traceparent-header):
 * how a trace crosses from the gateway to the worker inside the log, and from a client into the
 * gateway. Parsed strictly, because both ways it comes from outside the process: a value that is
 * not well formed is no parent at all (the spec's rule), never an error and never a broken span.
 */

/** A parsed `traceparent`: lower-case hex ids, neither of them all zeros. */
export interface TraceParent {
  /** 32 lower-case hex digits. */
  readonly traceId: string;
  /** 16 lower-case hex digits: the parent span. */
  readonly spanId: string;
  /** The trace flags; bit 0 is `sampled`. */
  readonly flags: number;
}

const VERSION_00 = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
/** A later version may append fields after a dash; its first four fields read as version 00's. */
const LATER_VERSION = /^([0-9a-e][0-9a-f]|f[0-9a-e])-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:-.*)?$/s;
const ZERO_TRACE = "0".repeat(32);
const ZERO_SPAN = "0".repeat(16);
/** A header longer than this is not a traceparent (version 00 is 55 characters). */
const MAX_LENGTH = 512;

/**
 * The trace parent `value` names, or `undefined` when it names none: absent, not a string, too
 * long, malformed, version `ff`, or an all-zero id.
 */
export function parseTraceparent(value: unknown): TraceParent | undefined {
  if (typeof value !== "string" || value.length > MAX_LENGTH) return undefined;
  const v00 = VERSION_00.exec(value);
  const match = v00 ? ["", "00", v00[1], v00[2], v00[3]] : value.startsWith("00") ? null : LATER_VERSION.exec(value);
  if (!match) return undefined;
  const [, , traceId = "", spanId = "", flags = ""] = match;
  if (traceId === ZERO_TRACE || spanId === ZERO_SPAN) return undefined;
  return { traceId, spanId, flags: Number.parseInt(flags, 16) };
}

/** `parent` as a version 00 `traceparent`. */
export function formatTraceparent(parent: TraceParent): string {
  return `00-${parent.traceId}-${parent.spanId}-${(parent.flags & 0xff).toString(16).padStart(2, "0")}`;
}
