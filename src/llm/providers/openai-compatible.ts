import { createParser, type EventSourceMessage } from "eventsource-parser";
import type { Usage } from "../../core/entries.ts";
import { yieldIfLong } from "../../observability/turns.ts";
import { modelDispatcher, sendSliced, type SlicedRequest, type SlicedResponse } from "./sliced-response.ts";
import type { ModelCall, ModelEvent, ModelProvider } from "../provider.ts";
import { endedEarly, fromWireError, isWireError, networkFailure, protocolFailure, statusFailure, type FailureSource } from "./failures.ts";
import { ProviderError } from "../provider-error.ts";
import { withPrefill } from "./prompt.ts";

export interface OpenAICompatibleOptions {
  /** The provider's configured name: the registry key and `ProviderError.details.provider`. */
  readonly name: string;
  /** The API root that `/chat/completions` is under, e.g. `https://api.openai.com/v1`. */
  readonly baseUrl: string;
  /** Sent as `Authorization: Bearer <apiKey>`; none is sent when absent. */
  readonly apiKey?: string;
  /** The model id sent in the request body. */
  readonly model: string;
  /** Extra request headers. */
  readonly headers?: Readonly<Record<string, string>>;
}

/** The longest SSE event the reader buffers; a provider's chunk is a few hundred bytes. */
const MAX_EVENT_BYTES = 1 << 20;
/** The most of a read parsed before the stream may let the event loop turn: about fifty chunks of one token. */
const FEED_BYTES = 8 << 10;
/** How much of an error body is read for its message. */
const MAX_ERROR_BODY_BYTES = 64 << 10;

/** The finish reasons of the wire, in the words every provider of Lifeline reports. */
const FINISH_REASONS: Readonly<Record<string, string>> = {
  stop: "stop",
  length: "length",
  content_filter: "content-filter",
  tool_calls: "tool-calls",
  function_call: "tool-calls",
};

/** What one `chat.completion.chunk` may carry that Lifeline reads; everything else is ignored. */
interface Chunk {
  readonly error?: unknown;
  readonly choices?: unknown;
  readonly usage?: unknown;
}

/**
 * A model behind the OpenAI Chat Completions wire format (OpenAI, vLLM, llama.cpp, Ollama, our
 * sim-llm...). A non-empty prefix is sent as a trailing assistant message; servers that continue
 * it (sim-llm, vLLM's `continue_final_message`) produce only the rest of the answer.
 *
 * The stream is read straight off the socket (undici, a keep-alive pool, one SSE parser and one
 * `JSON.parse` per chunk, checking only the fields used), parsed in turns of the event loop and
 * only as the caller reads, so a caller that falls behind slows the provider's socket down instead
 * of buffering its answer, and a backlog waits for the next turn (decisions 017, 051, 053).
 */
export function createOpenAICompatibleProvider(options: OpenAICompatibleOptions): ModelProvider {
  const source: FailureSource = { provider: options.name, secret: options.apiKey };
  const url = new URL(`${options.baseUrl.replace(/\/+$/, "")}/chat/completions`);
  const dispatcher = modelDispatcher();
  const headers: Record<string, string> = {
    // Lower-cased, so a configured `Authorization` or `Content-Type` is replaced, not sent twice.
    ...Object.fromEntries(Object.entries(options.headers ?? {}).map(([header, value]) => [header.toLowerCase(), value])),
    "content-type": "application/json",
    accept: "text/event-stream",
    ...(options.apiKey === undefined ? {} : { authorization: `Bearer ${options.apiKey}` }),
  };
  const post = (body: string): SlicedRequest =>
    sendSliced(dispatcher, { origin: url.origin, path: `${url.pathname}${url.search}`, method: "POST", headers, body });
  return {
    name: options.name,
    stream: (call) => streamChat(source, options.model, post, call),
  };
}

function requestBody(model: string, call: ModelCall): string {
  const { request } = call;
  return JSON.stringify({
    model,
    messages: withPrefill(request.messages, call.prefix),
    stream: true,
    stream_options: { include_usage: true },
    ...(request.max_tokens === undefined ? {} : { max_tokens: request.max_tokens }),
    ...(request.temperature === undefined ? {} : { temperature: request.temperature }),
    ...(request.seed === undefined ? {} : { seed: request.seed }),
  });
}

async function* streamChat(
  source: FailureSource,
  model: string,
  post: (body: string) => SlicedRequest,
  call: ModelCall,
): AsyncGenerator<ModelEvent> {
  call.signal.throwIfAborted();
  const request = post(requestBody(model, call));
  const onAbort = (): void => request.abort(call.signal.reason instanceof Error ? call.signal.reason : undefined);
  call.signal.addEventListener("abort", onAbort, { once: true });
  let res: SlicedResponse | undefined;
  let finished = false;
  try {
    res = await request.response;
    const { status } = res;
    if (status < 200 || status >= 300) throw statusFailure(source, status, await errorMessage(res), res.headers);
    yield { type: "open" };
    const reader = new ChunkReader(source);
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

/** Turns the SSE text of one response into model events: tokens as they come, the finish at the end. */
class ChunkReader {
  readonly #source: FailureSource;
  readonly #parser;
  /** The tokens' texts parsed since the last `take`. */
  #texts: string[] = [];
  #finishReason: string | undefined;
  #usage: Usage = { promptTokens: 0, completionTokens: 0 };
  /** `[DONE]` arrived: nothing more is read. */
  done = false;

  constructor(source: FailureSource) {
    this.#source = source;
    this.#parser = createParser({
      onEvent: (message) => this.#onEvent(message),
      onError: (error) => {
        // Unknown fields and bad `retry` values are ignored, as the SSE rules say; only an endless event is fatal.
        if (error.type === "max-buffer-size-exceeded")
          throw protocolFailure(this.#source, `an event is longer than ${MAX_EVENT_BYTES} bytes`);
      },
      maxBufferSize: MAX_EVENT_BYTES,
    });
  }

  /** What broke the stream, once the tokens before it have been taken. */
  #failure: unknown;

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
  finish(): ModelEvent | undefined {
    const reason = this.#finishReason;
    if (reason === undefined) return undefined;
    // Own keys only: a reason named like an Object property (`constructor`) is one it does not know.
    const known = Object.hasOwn(FINISH_REASONS, reason) ? FINISH_REASONS[reason] : undefined;
    return { type: "finish", finishReason: known ?? "other", usage: this.#usage };
  }

  #onEvent(message: EventSourceMessage): void {
    if (this.done) return;
    if (message.data === "[DONE]") {
      this.done = true;
      return;
    }
    let chunk: Chunk;
    try {
      chunk = JSON.parse(message.data) as Chunk;
    } catch {
      throw protocolFailure(this.#source, `a stream chunk is not JSON: ${message.data.slice(0, 100)}`);
    }
    if (typeof chunk !== "object" || chunk === null) throw protocolFailure(this.#source, "a stream chunk is not a JSON object");
    if (chunk.error !== undefined && chunk.error !== null) {
      throw isWireError(chunk.error)
        ? fromWireError(chunk.error, this.#source)
        : protocolFailure(this.#source, "an error chunk without a message");
    }
    const usage = chunk.usage as { prompt_tokens?: unknown; completion_tokens?: unknown } | null | undefined;
    if (typeof usage === "object" && usage !== null) {
      this.#usage = {
        promptTokens: typeof usage.prompt_tokens === "number" ? usage.prompt_tokens : 0,
        completionTokens: typeof usage.completion_tokens === "number" ? usage.completion_tokens : 0,
      };
    }
    if (!Array.isArray(chunk.choices)) return;
    const choice = chunk.choices[0] as { delta?: { content?: unknown } | null; finish_reason?: unknown } | null | undefined;
    if (typeof choice !== "object" || choice === null) return;
    const content = choice.delta?.content;
    if (typeof content === "string" && content !== "") this.#texts.push(content);
    if (typeof choice.finish_reason === "string") this.#finishReason = choice.finish_reason;
  }
}
