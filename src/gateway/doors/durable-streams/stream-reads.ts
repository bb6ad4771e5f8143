import type { FastifyReply, FastifyRequest } from "fastify";
import { LifelineError } from "../../../core/errors.ts";
import { nextStreamCursor } from "../../../core/stream-cursor.ts";
import { STREAM_HEADERS, STREAM_QUERY, type LiveMode, type StreamControl } from "../../../core/stream-headers.ts";
import { OFFSET_NOW, OFFSET_START, parseOffset, type StreamOffset } from "../../../core/stream-offsets.ts";
import { sseControlEvent, sseDataEvent } from "../../../core/stream-sse.ts";
import { jsonArrayOf } from "./json-messages.ts";
import type { ReadSource, SourceFailure, SourceHead, SourcePage } from "./read-source.ts";
import { failureError, sendStreamError } from "./replies.ts";
import { SAFETY_HEADERS } from "./safety-headers.ts";

export interface ReadOptions {
  /** How long a long-poll waits for data before it answers 204. */
  readonly longPollMs: number;
  /** How long an SSE response stays open before the server ends it (clients reconnect). */
  readonly sseMaxMs: number;
  readonly heartbeatMs: number;
  /** The most bytes of data one response page carries (at least one chunk). */
  readonly pageBytes: number;
  readonly shutdown: AbortSignal;
  /** Whether catch-up pages may be cached (a generation's may not: see decision 027). */
  readonly cacheable: boolean;
}

/** Where a read starts: the stream's start, its tail now, or after an offset it gave out. */
type ReadFrom = { readonly kind: "start" } | { readonly kind: "now" } | { readonly kind: "after"; readonly offset: StreamOffset };

interface ReadQuery {
  readonly from: ReadFrom;
  /** The offset as sent, for the ETag. */
  readonly offsetText: string;
  readonly live: LiveMode | undefined;
  readonly cursor: string | undefined;
}

function readQuery(request: FastifyRequest): ReadQuery {
  const params = new URL(request.url, "http://gateway").searchParams;
  const offsets = params.getAll(STREAM_QUERY.offset);
  if (offsets.length > 1) throw new LifelineError("invalid_offset", "offset is given more than once.");
  const text = offsets[0];
  const liveText = params.get(STREAM_QUERY.live);
  const live = liveText === "long-poll" || liveText === "sse" ? liveText : undefined;
  const cursor = params.get(STREAM_QUERY.cursor) ?? undefined;
  if (text === undefined) {
    if (live) throw new LifelineError("invalid_offset", `live=${live} needs an offset (-1 for the start, now for the tail).`);
    return { from: { kind: "start" }, offsetText: OFFSET_START, live, cursor };
  }
  if (text === OFFSET_START) return { from: { kind: "start" }, offsetText: text, live, cursor };
  if (text === OFFSET_NOW) return { from: { kind: "now" }, offsetText: text, live, cursor };
  const offset = parseOffset(text);
  if (!offset) throw new LifelineError("invalid_offset", "offset is not -1, now, or an offset this stream gave out.");
  return { from: { kind: "after", offset }, offsetText: text, live, cursor };
}

/** Headers every answer about a stream's state carries. */
function stateHeaders(head: SourceHead, nextOffset: string, upToDate: boolean, closed: boolean): Record<string, string> {
  return {
    "content-type": head.contentType,
    [STREAM_HEADERS.nextOffset]: nextOffset,
    ...(upToDate ? { [STREAM_HEADERS.upToDate]: "true" } : {}),
    ...(closed ? { [STREAM_HEADERS.closed]: "true" } : {}),
  };
}

/** `HEAD`: where the stream stands, without a body; not a read for the TTL. */
export async function serveHead(reply: FastifyReply, source: ReadSource): Promise<void> {
  const head = await source.head();
  if (head.kind === "fail") return sendStreamError(reply, failureError(head));
  void reply
    .code(200)
    .headers({
      ...stateHeaders(head, head.tailOffset, false, head.closed),
      "cache-control": "no-store",
      etag: `"${head.tag}:-1:${head.tailOffset}${head.closed ? ":c" : ""}"`,
      ...(head.ttlSeconds !== undefined ? { [STREAM_HEADERS.ttl]: String(head.ttlSeconds) } : {}),
      ...(head.expiresAt !== undefined ? { [STREAM_HEADERS.expiresAt]: head.expiresAt } : {}),
    })
    .send();
}

/** `GET`: catch-up, long-poll or SSE, by the query. */
export async function serveRead(request: FastifyRequest, reply: FastifyReply, source: ReadSource, options: ReadOptions): Promise<void> {
  const query = readQuery(request);
  let after: StreamOffset | undefined;
  if (query.from.kind === "after") after = query.from.offset;
  if (query.from.kind === "now") {
    const head = await source.head();
    if (head.kind === "fail") return sendStreamError(reply, failureError(head));
    await source.touch();
    if (!query.live || head.closed) return sendNow(reply, head, query);
    after = parseOffset(head.tailOffset);
  }
  if (query.live === "sse") return serveSse(request, reply, source, after, query.cursor, options);
  const page = await source.page(after, options.pageBytes);
  if (page.kind === "fail") return sendStreamError(reply, failureError(page));
  await source.touch();
  if (query.live === "long-poll" && page.chunks.length === 0) return longPoll(request, reply, source, page, query.cursor, options);
  const etag = `"${page.head.tag}:${query.offsetText}:${page.nextOffset}${page.closed ? ":c" : ""}"`;
  const headers: Record<string, string> = {
    ...stateHeaders(page.head, page.nextOffset, page.upToDate, page.closed),
    etag,
    "cache-control": options.cacheable && !page.upToDate ? "private, max-age=60, stale-while-revalidate=300" : "no-store",
    ...(query.live === "long-poll" ? { [STREAM_HEADERS.cursor]: nextStreamCursor(query.cursor, Date.now()) } : {}),
  };
  if (request.headers["if-none-match"] === etag) return void reply.code(304).headers({ etag }).send();
  void reply.code(200).headers(headers).send(bodyOf(page));
}

/** `offset=now` without waiting (or on a closed stream): the tail, no data. */
function sendNow(reply: FastifyReply, head: SourceHead, query: ReadQuery): void {
  const headers = { ...stateHeaders(head, head.tailOffset, true, head.closed), "cache-control": "no-store" };
  if (query.live === "long-poll") return void reply.code(204).headers(headers).send();
  if (query.live === "sse") {
    void reply.code(200).headers({ ...headers, "content-type": "text/event-stream", "cache-control": "no-cache" });
    return void reply.send(sseControlEvent({ streamNextOffset: head.tailOffset, upToDate: true, streamClosed: true }));
  }
  void reply
    .code(200)
    .headers(headers)
    .send(head.json ? Buffer.from("[]") : Buffer.alloc(0));
}

function bodyOf(page: SourcePage): Buffer {
  return page.head.json ? jsonArrayOf(page.chunks) : Buffer.concat(page.chunks);
}

/** A signal that aborts when the client leaves, the gateway shuts down, or `ms` pass. */
function requestSignal(request: FastifyRequest, shutdown: AbortSignal, ms: number): { signal: AbortSignal; done: () => void } {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), ms);
  const leave = (): void => controller.abort();
  request.raw.socket.once("close", leave);
  shutdown.addEventListener("abort", leave, { once: true });
  return {
    signal: controller.signal,
    done: () => {
      clearTimeout(timer);
      request.raw.socket.off("close", leave);
      shutdown.removeEventListener("abort", leave);
    },
  };
}

async function longPoll(
  request: FastifyRequest,
  reply: FastifyReply,
  source: ReadSource,
  first: SourcePage,
  clientCursor: string | undefined,
  options: ReadOptions,
): Promise<void> {
  let page: SourcePage | SourceFailure = first;
  const wait = requestSignal(request, options.shutdown, options.longPollMs);
  try {
    while (page.kind === "page" && page.chunks.length === 0 && !page.closed && !wait.signal.aborted) {
      await source.wait(wait.signal);
      if (wait.signal.aborted) break;
      page = await source.page(parseOffset(page.nextOffset), options.pageBytes);
    }
  } finally {
    wait.done();
  }
  if (page.kind === "fail") return sendStreamError(reply, failureError(page));
  const cursor = page.closed ? {} : { [STREAM_HEADERS.cursor]: nextStreamCursor(clientCursor, Date.now()) };
  if (page.chunks.length === 0) {
    return void reply
      .code(204)
      .headers({ ...stateHeaders(page.head, page.nextOffset, true, page.closed), ...cursor, "cache-control": "no-store" })
      .send();
  }
  void reply
    .code(200)
    .headers({ ...stateHeaders(page.head, page.nextOffset, page.upToDate, page.closed), ...cursor, "cache-control": "no-store" })
    .send(bodyOf(page));
}

/** Whether an SSE data event carries base64 (PROTOCOL.md §5.8): any type but `text/*` and JSON. */
function isBinary(head: SourceHead): boolean {
  const type = (head.contentType.split(";")[0] ?? "").trim().toLowerCase();
  return !(type.startsWith("text/") || type === "application/json");
}

async function serveSse(
  request: FastifyRequest,
  reply: FastifyReply,
  source: ReadSource,
  start: StreamOffset | undefined,
  clientCursor: string | undefined,
  options: ReadOptions,
): Promise<void> {
  let page = await source.page(start, options.pageBytes);
  if (page.kind === "fail") return sendStreamError(reply, failureError(page));
  await source.touch();
  const binary = isBinary(page.head);
  const raw = reply.raw;
  reply.hijack();
  raw.writeHead(200, {
    ...(reply.getHeaders() as Record<string, string>),
    ...SAFETY_HEADERS,
    "content-type": "text/event-stream",
    "cache-control": "no-cache",
    connection: "keep-alive",
    ...(binary ? { [STREAM_HEADERS.sseDataEncoding]: "base64" } : {}),
  });
  const life = requestSignal(request, options.shutdown, options.sseMaxMs);
  const heartbeat = setInterval(() => raw.write(": ping\n\n"), options.heartbeatMs);
  try {
    for (;;) {
      if (page.chunks.length > 0) {
        const bytes = Buffer.concat(page.chunks);
        const payload = page.head.json
          ? jsonArrayOf(page.chunks).toString("utf8")
          : binary
            ? bytes.toString("base64")
            : bytes.toString("utf8");
        await write(raw, sseDataEvent(payload));
      }
      const control: StreamControl = page.closed
        ? { streamNextOffset: page.nextOffset, upToDate: true, streamClosed: true }
        : {
            streamNextOffset: page.nextOffset,
            streamCursor: nextStreamCursor(clientCursor, Date.now()),
            ...(page.upToDate ? { upToDate: true as const } : {}),
          };
      await write(raw, sseControlEvent(control));
      if (page.closed || life.signal.aborted) break;
      if (page.upToDate) {
        await source.wait(life.signal);
        if (life.signal.aborted) break;
        await source.touch();
      }
      const next: SourcePage | SourceFailure = await source.page(parseOffset(page.nextOffset), options.pageBytes);
      // A stream deleted, or a generation reset, under an open response: it ends, and the
      // client's reconnect at its last offset gets the error as a status.
      if (next.kind === "fail") break;
      page = next;
    }
  } catch (error) {
    request.log.warn({ err: error }, "durable stream SSE response ended by an error");
  } finally {
    clearInterval(heartbeat);
    life.done();
    raw.end();
  }
}

/** Writes and waits for the socket to drain when its buffer is full. */
async function write(raw: FastifyReply["raw"], text: string): Promise<void> {
  if (raw.destroyed) throw new Error("the client left");
  if (!raw.write(text)) await new Promise<void>((resolve) => raw.once("drain", resolve).once("close", resolve));
}
