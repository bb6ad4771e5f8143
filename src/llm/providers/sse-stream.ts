import { createParser, type EventSourceMessage } from "eventsource-parser";
import { yieldIfLong } from "../../observability/turns.ts";
import type { ModelCall, ModelEvent } from "../provider.ts";
import { ProviderError } from "../provider-error.ts";
import { endedEarly, networkFailure, protocolFailure, statusFailure, type FailureSource } from "./failures.ts";
import { modelDispatcher, sendSliced, type SlicedRequest, type SlicedResponse } from "./sliced-response.ts";

/** The longest SSE event the reader buffers; a provider's chunk is a few hundred bytes. */
const MAX_EVENT_BYTES = 1 << 20;
/** The most of a read parsed before the stream may let the event loop turn: about fifty chunks of one token. */
const FEED_BYTES = 8 << 10;
/** How much of an error body is read for its message. */
const MAX_ERROR_BODY_BYTES = 64 << 10;

/**
 * Turns the SSE text of one response into model events, for one wire format: the SSE parser, the
 * tokens parsed since the last `take` handed over as one event, and the failure that ended the
 * stream once those tokens are taken. A wire format reads each event in {@link onEvent}.
 */
export abstract class EventReader {
  protected readonly source: FailureSource;
  readonly #parser;
  /** The tokens' texts parsed since the last `take`. */
  #texts: string[] = [];
  /** What broke the stream, once the tokens before it have been taken. */
  #failure: unknown;
  /** The stream said it has ended (`[DONE]`, `message_stop`): nothing more is read. */
  done = false;

  constructor(source: FailureSource) {
    this.source = source;
    this.#parser = createParser({
      onEvent: (message) => {
        if (!this.done) this.onEvent(message);
      },
      onError: (error) => {
        // Unknown fields and bad `retry` values are ignored, as the SSE rules say; only an endless event is fatal.
        if (error.type === "max-buffer-size-exceeded")
          throw protocolFailure(this.source, `an event is longer than ${MAX_EVENT_BYTES} bytes`);
      },
      maxBufferSize: MAX_EVENT_BYTES,
    });
  }

  feed(text: string): void {
    if (this.done || text === "") return;
    try {
      this.#parser.feed(text);
    } catch (error) {
      this.#failure = error;
      this.done = true;
    }
  }

  /**
   * The tokens parsed since the last call, as one event (a piece of at most 8 KB holds about fifty);
   * then, once they are taken, the failure that ended the stream.
   */
  *take(): Generator<ModelEvent> {
    const texts = this.#texts;
    if (texts.length > 0) {
      this.#texts = [];
      yield texts.length === 1 ? { type: "token", text: texts[0]! } : { type: "token", text: texts.join(""), tokens: texts.length };
    }
    if (this.#failure !== undefined) throw this.#failure;
  }

  /** The finish event, when the model said it had finished. */
  abstract finish(): ModelEvent | undefined;

  /** Reads one event of the wire format; throws a `ProviderError` when it ends the call. */
  protected abstract onEvent(message: EventSourceMessage): void;

  /** Hands one token's text over with the next `take`. */
  protected token(text: string): void {
    this.#texts.push(text);
  }

  /** An event's data as a JSON object, or a protocol failure. */
  protected object(data: string): Record<string, unknown> {
    let parsed: unknown;
    try {
      parsed = JSON.parse(data);
    } catch {
      throw protocolFailure(this.source, `a stream chunk is not JSON: ${data.slice(0, 100)}`);
    }
    if (typeof parsed !== "object" || parsed === null) throw protocolFailure(this.source, "a stream chunk is not a JSON object");
    return parsed as Record<string, unknown>;
  }
}

/** Sends a JSON body to `url` with `headers`, over a keep-alive pool of its own (one per provider). */
export function poster(url: string, headers: Readonly<Record<string, string>>): (body: string) => SlicedRequest {
  const { origin, pathname, search } = new URL(url);
  const dispatcher = modelDispatcher();
  return (body) => sendSliced(dispatcher, { origin, path: `${pathname}${search}`, method: "POST", headers, body });
}

/**
 * Streams one call's response: its status checked (an error status's body read for its message),
 * `open` once it has started, then the events `reader` makes of its SSE text, and the finish.
 *
 * The stream is read straight off the socket (undici, a keep-alive pool, one SSE parser and one
 * `JSON.parse` per chunk, checking only the fields used), parsed in turns of the event loop and
 * only as the caller reads, so a caller that falls behind slows the provider's socket down instead
 * of buffering its answer, and a backlog waits for the next turn (decisions 017, 051, 053).
 */
export async function* streamEvents(
  source: FailureSource,
  send: () => SlicedRequest,
  call: ModelCall,
  reader: EventReader,
): AsyncGenerator<ModelEvent> {
  call.signal.throwIfAborted();
  const request = send();
  const onAbort = (): void => request.abort(call.signal.reason instanceof Error ? call.signal.reason : undefined);
  call.signal.addEventListener("abort", onAbort, { once: true });
  let res: SlicedResponse | undefined;
  let finished = false;
  try {
    res = await request.response;
    const { status } = res;
    if (status < 200 || status >= 300) throw statusFailure(source, status, await errorMessage(res), res.headers);
    yield { type: "open" };
    let started = false; // a byte-order mark before the first event is not part of it
    // Not aborted when left at `[DONE]`: the rest is drained and the connection kept alive.
    let carried: Buffer | undefined; // the start of an event whose end is still to come
    for (let read = await res.read(); read; read = await res.read()) {
      const bytes = carried ? Buffer.concat([carried, read]) : read;
      carried = undefined;
      // A read takes everything parsed since the last (16 KB, or all the socket held when the
      // parser had stopped, a hundred KB and more under a fast model): it is decoded piece by piece,
      // and before each piece the loop turns if the slice is spent (by this stream or by the others
      // whose data came in the same turn), so no backlog, of one stream or of many, is one long
      // step (decisions 044, 051). A piece ends where an event ends, and what follows the last
      // event's end waits, as bytes, for the next read: the SSE parser keeps an unfinished line as
      // a slice of the text it was given, which keeps that whole text alive until the next piece,
      // across collections of the young generation, for every answer (decision 054).
      for (let at = 0; at < bytes.length && !reader.done;) {
        for (let turn = yieldIfLong(); turn; turn = yieldIfLong()) await turn;
        const limit = Math.min(at + FEED_BYTES, bytes.length);
        let end = eventsEnd(bytes, at, limit);
        if (end === -1) {
          // The rest of the read waits for the next, unless its lines end with a lone CR (such a
          // stream is fed as it comes: no blank line is looked for in it).
          if (limit === bytes.length && !(bytes.includes(CR, at) && !bytes.includes(LF, at))) {
            carried = Buffer.from(bytes.subarray(at)); // a copy: the read's buffer need not stay
            break;
          }
          // An event longer than a piece: fed as it comes, up to its last whole character.
          end = wholeCharactersEnd(bytes, at, limit);
          if (end === at) {
            carried = Buffer.from(bytes.subarray(at)); // a character the next read completes
            break;
          }
        }
        if (!started) {
          started = true;
          if (end - at >= 3 && bytes[at] === 0xef && bytes[at + 1] === 0xbb && bytes[at + 2] === 0xbf) at += 3;
        }
        // Every piece ends where a character does: decoded by itself, with no decoder's state.
        reader.feed(bytes.toString("utf8", at, end));
        for (const event of reader.take()) yield event;
        at = end;
      }
      if (reader.done) break;
    }
    if (carried) reader.feed(carried.toString("utf8")); // a character left cut is U+FFFD
    for (const event of reader.take()) yield event;
    const finish = reader.finish();
    if (!finish) throw endedEarly(source);
    finished = true;
    yield finish;
  } catch (error) {
    if (call.signal.aborted) throw call.signal.reason;
    if (error instanceof ProviderError) throw error;
    throw networkFailure(source, error);
  } finally {
    call.signal.removeEventListener("abort", onAbort);
    // A finished response is read to its end, so its connection goes back to the pool for the next call.
    if (finished) res?.drain();
    else request.abort();
  }
}

const LF = 0x0a;
const CR = 0x0d;

/**
 * Just past the last blank line that ends in `bytes[from, to)`, where an event ends (`\n\n` or
 * `\r\n\r\n`; the bytes before `from` came just before, so a blank line that began in the last
 * piece counts), or -1 when there is none. Lines ended by a lone CR are not looked for.
 */
function eventsEnd(bytes: Buffer, from: number, to: number): number {
  const piece = bytes.subarray(from, to);
  for (let i = piece.lastIndexOf(LF); i !== -1; i = i > 0 ? piece.lastIndexOf(LF, i - 1) : -1) {
    const lf = from + i;
    if (lf >= 1 && (bytes[lf - 1] === LF || (bytes[lf - 1] === CR && lf >= 2 && bytes[lf - 2] === LF))) return lf + 1;
  }
  return -1;
}

/**
 * Where the last whole UTF-8 character of `bytes[from, to)` ends: `to`, or the start of a
 * character whose bytes go on past `to`. Bytes that are not UTF-8 end where they are (they decode
 * to U+FFFD whatever the cut).
 */
function wholeCharactersEnd(bytes: Buffer, from: number, to: number): number {
  // The lead byte of the last character: at most three continuation bytes (10xxxxxx) before `to`.
  let lead = to - 1;
  while (lead > from && lead >= to - 3 && (bytes[lead]! & 0xc0) === 0x80) lead--;
  const byte = bytes[lead]!;
  const length = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1;
  return lead >= from && lead + length > to ? lead : to;
}

/** The server's own words for an error status: `error.message` of its JSON body, else the body, else the reason phrase. */
async function errorMessage(res: SlicedResponse): Promise<string> {
  const parts: Buffer[] = [];
  let size = 0;
  try {
    for (let part = await res.read(); part; part = await res.read()) {
      if (size < MAX_ERROR_BODY_BYTES) parts.push(part);
      size += part.length;
    }
  } catch {
    // A body cut short still has its status to go by.
  }
  const text = Buffer.concat(parts).toString("utf8").slice(0, MAX_ERROR_BODY_BYTES);
  try {
    const message = (JSON.parse(text) as { error?: { message?: unknown } } | null)?.error?.message;
    if (typeof message === "string" && message !== "") return message;
  } catch {
    // Not JSON: the text itself.
  }
  return text.trim().slice(0, 500) || res.statusMessage || "error";
}
