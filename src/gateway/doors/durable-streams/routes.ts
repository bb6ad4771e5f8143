import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { LifelineError } from "../../../core/errors.ts";
import { RESERVED_STREAMS, STREAM_ROUTE, generationOfStream, isStreamName } from "../../../core/stream-paths.ts";
import type { StreamStore } from "../../../engine/streams/port.ts";
import { Streams } from "../../../engine/streams/streams.ts";
import { contentionAsUnavailable, guardStreamStore } from "../../guarded-stream-store.ts";
import type { DoorOptions } from "../door-options.ts";
import { ByteSource } from "./byte-source.ts";
import { GenerationSource } from "./generation-source.ts";
import type { ReadSource } from "./read-source.ts";
import { storeNameOf } from "./tenant-names.ts";
import { sendStreamError } from "./replies.ts";
import { SAFETY_HEADERS } from "./safety-headers.ts";
import { serveHead, serveRead, type ReadOptions } from "./stream-reads.ts";
import { appendStream, createStream, deleteStream } from "./stream-writes.ts";

export interface DurableStreamOptions extends DoorOptions {
  /** Where ordinary streams live (opened beside the engine, `openStreamStore`). */
  readonly streams: StreamStore;
  /** The largest request body. */
  readonly maxBodyBytes: number;
  /** How long a long-poll read waits for data before it answers 204. @defaultValue 10000 */
  readonly streamLongPollMs?: number;
}

/** How long an SSE response stays open; the protocol asks for about a minute (PROTOCOL.md §10.2). */
const SSE_MAX_MS = 60_000;
/** The most data one response page carries (always at least one whole chunk). */
const PAGE_BYTES = 1 << 20;

/**
 * The Durable Streams protocol under `/v1/stream/<name>` (docs/protocols/durable-streams.md):
 * ordinary streams of any content type in the stream store, and every generation's log as a
 * read-only JSON stream at `/v1/stream/generations/<id>`. Its own scope: bodies of every type,
 * read as bytes, and the browser-safety headers on every answer.
 */
export function durableStreamRoutes(app: FastifyInstance, options: DurableStreamOptions): void {
  const streams = new Streams(guardStreamStore(options.streams));
  const reads = (cacheable: boolean): ReadOptions => ({
    longPollMs: options.streamLongPollMs ?? 10_000,
    sseMaxMs: SSE_MAX_MS,
    heartbeatMs: options.heartbeatMs,
    pageBytes: PAGE_BYTES,
    shutdown: options.shutdown,
    cacheable,
  });
  void app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser("*", { parseAs: "buffer", bodyLimit: options.maxBodyBytes }, (_request, body, done) => done(null, body));
    // A content type that is not a media type is a bad header here (every type is welcome), not a 415.
    scope.setErrorHandler((error: Error & { code?: string }) => {
      if (error.code === "FST_ERR_CTP_INVALID_MEDIA_TYPE") throw new LifelineError("invalid_header", "Content-Type is not a media type.");
      throw error;
    });
    // Browser safety on every answer (PROTOCOL.md §12); cross-origin access is the deployment's
    // CORS allow-list (LIFELINE_CORS_ORIGINS), which knows the protocol's headers.
    // Set when the answer goes out, so refusals of the gateway's own hooks (401, 403) carry them too.
    scope.addHook("onSend", async (_request, reply, payload) => {
      void reply.headers(SAFETY_HEADERS);
      return payload;
    });
    scope.route({
      method: "GET",
      url: STREAM_ROUTE,
      exposeHeadRoute: false,
      handler: async (request, reply) => {
        const target = targetOf(request);
        await serveRead(request, reply, await sourceOf(request, target), reads(target.generation === undefined));
      },
    });
    scope.head(STREAM_ROUTE, async (request, reply) => serveHead(reply, await sourceOf(request, targetOf(request))));
    scope.put(STREAM_ROUTE, async (request, reply) => {
      const target = writableTarget(request, reply);
      if (target !== undefined)
        await createStream(request, reply, streams, target, (name) => storeNameOf(request.caller, name)).catch(contentionAsUnavailable);
    });
    scope.post(STREAM_ROUTE, async (request, reply) => {
      const target = writableTarget(request, reply);
      if (target !== undefined)
        await appendStream(request, reply, streams, storeNameOf(request.caller, target)).catch(contentionAsUnavailable);
    });
    scope.delete(STREAM_ROUTE, async (request, reply) => {
      const target = writableTarget(request, reply);
      if (target !== undefined) await deleteStream(reply, streams, storeNameOf(request.caller, target)).catch(contentionAsUnavailable);
    });
  });

  /** What a read is served from: the caller's stream, or a generation it may see. */
  async function sourceOf(request: FastifyRequest, target: { name: string; generation: string | undefined }): Promise<ReadSource> {
    if (target.generation === undefined) return new ByteSource(streams, storeNameOf(request.caller, target.name));
    // Another tenant's generation is the same 404 as one that does not exist.
    await options.owners.check(request.caller, target.generation).catch((error: unknown) => {
      if (error instanceof LifelineError && error.code === "generation_not_found")
        throw new LifelineError("stream_not_found", "No generation has this id.");
      throw error;
    });
    return new GenerationSource(options.engine, target.generation);
  }
}

/** The stream a request names, and the generation when it is one's log. */
function targetOf(request: FastifyRequest): { name: string; generation: string | undefined } {
  const name = (request.params as { "*"?: string })["*"] ?? "";
  if (name === RESERVED_STREAMS || name.startsWith(`${RESERVED_STREAMS}/`)) {
    throw new LifelineError("stream_not_found", "The reserved __ds control APIs are not served by this gateway.");
  }
  if (!isStreamName(name)) throw new LifelineError("invalid_stream_name");
  return { name, generation: generationOfStream(name) };
}

/** The name of a stream a client may write, or `undefined` when the answer (405) was sent. */
function writableTarget(request: FastifyRequest, reply: FastifyReply): string | undefined {
  const target = targetOf(request);
  if (target.generation === undefined) return target.name;
  sendStreamError(reply, new LifelineError("stream_read_only"), { allow: "GET, HEAD, OPTIONS" });
  return undefined;
}
