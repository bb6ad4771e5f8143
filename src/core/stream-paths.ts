/**
 * The paths of the Durable Streams door (docs/protocols/durable-streams.md). A stream is the URL
 * `/v1/stream/<name>`; names under `generations/` are reserved for the read-only streams of
 * generation logs, `generations/<id>`. Nothing here does I/O.
 */

/** Every stream's URL starts with this. */
export const STREAM_ROOT = "/v1/stream/";

/** The route template the gateway registers (fastify's wildcard). */
export const STREAM_ROUTE = `${STREAM_ROOT}*`;

/** The folder of generation streams: `generations/<id>` is the log of generation `<id>`. */
export const GENERATION_STREAMS = "generations/";

/** The Durable Streams control APIs the protocol reserves (`__ds/…`); not served by this door. */
export const RESERVED_STREAMS = "__ds";

/** The longest stream name, in bytes. */
export const MAX_STREAM_NAME_BYTES = 512;

/** A name's characters: URL path characters that need no escaping, and `/` between segments. */
const NAME = /^[A-Za-z0-9._~!$'()*+,;=:@-]+(?:\/[A-Za-z0-9._~!$'()*+,;=:@-]+)*$/;

/** Whether `name` may name a stream: non-empty segments, none `.` or `..`, no escapes needed. */
export function isStreamName(name: string): boolean {
  // The characters allowed are ASCII: a name's length is its size in bytes.
  if (name.length === 0 || name.length > MAX_STREAM_NAME_BYTES || !NAME.test(name)) return false;
  return name.split("/").every((segment) => segment !== "." && segment !== "..");
}

/** The path of stream `name`, relative to the gateway's origin. */
export function streamPath(name: string): string {
  return `${STREAM_ROOT}${name}`;
}

/** The path of generation `id`'s read-only JSON stream. */
export function generationStreamPath(id: string): string {
  return `${STREAM_ROOT}${GENERATION_STREAMS}${encodeURIComponent(id)}`;
}

/** The generation a stream name reads, or `undefined` when it names an ordinary stream. */
export function generationOfStream(name: string): string | undefined {
  return name.startsWith(GENERATION_STREAMS) ? name.slice(GENERATION_STREAMS.length) : undefined;
}
