import type { FastifyInstance, FastifyReply } from "fastify";
import type { Entry } from "../../../core/entries.ts";
import { LifelineError } from "../../../core/errors.ts";
import { GENERATION_ID } from "../../../core/generation-id.ts";
import { HEADERS } from "../../../core/wire.ts";
import { readLog } from "../../../engine/read-log.ts";
import { Follow } from "../../follow.ts";
import { START, startOf } from "../../log-follower.ts";
import { SSE_HEADERS, type SseStreams } from "../../sse-streams.ts";
import { idempotencyKeyOf } from "../../start-generation.ts";
import type { DoorOptions } from "../door-options.ts";
import { DoorStream } from "../door-stream.ts";
import { answerHeaders, requireJson } from "./request-headers.ts";
import { ResponseEvents } from "./response-events.ts";
import { ResponseFormat } from "./response-format.ts";
import { parseResponseCall } from "./responses-request.ts";
import { wholeLog } from "./whole-log.ts";
import { OPENAI_PATHS } from "./wire.ts";

interface ResponseQuery {
  readonly stream?: unknown;
  readonly starting_after?: unknown;
}

/**
 * The Responses API over generations: `POST /v1/responses`, `GET /v1/responses/{id}` (its state,
 * or with `stream=true` its events from after `starting_after`), `POST /v1/responses/{id}/cancel`.
 * A response's id is its generation's id; every answer runs detached from the request that
 * started it (`background` or not), so a client that leaves never cancels it.
 */
export function responseRoutes(app: FastifyInstance, options: DoorOptions, streams: SseStreams): void {
  const { engine } = options;

  /** Streams the response's events after `after` (-1: all of them), following its log from offset 1. */
  const openStream = (reply: FastifyReply, id: string, after: number, headers: Record<string, string>, firstPage?: readonly Entry[]) => {
    if (options.shutdown.aborted) throw new LifelineError("shutting_down");
    const sse = streams.open(reply, id, "", { ...SSE_HEADERS, ...headers });
    const stream = new DoorStream(sse, new ResponseFormat(id, after), options.shutdown);
    stream.follow = new Follow(options.tails, id, START, stream);
    stream.follow.start(firstPage);
    return reply;
  };

  app.post(OPENAI_PATHS.responses, async (request, reply) => {
    requireJson(request.headers["content-type"]);
    const key = idempotencyKeyOf(request.headers);
    const call = parseResponseCall(request.body, options.models);
    const started = await options.starter.start(call.request, key, request.caller, request.headers.traceparent);
    const id = started.id;
    request.log.info({ generation: id, replay: started.replayed, stream: call.stream, background: call.background }, "response accepted");
    const headers = answerHeaders(started);
    if (call.stream) return openStream(reply, id, -1, headers);
    void reply.headers(headers);
    // `background: false` waits for the answer's end; the answer itself runs detached either way.
    const entries = call.background ? await readLog(engine, id) : await wholeLog(options, id, reply.raw);
    if (!entries) return reply.send(); // the client left; the answer goes on without it
    return reply.send(responseOf(id, entries));
  });

  app.get<{ Params: { id: string }; Querystring: ResponseQuery }>(OPENAI_PATHS.response, async (request, reply) => {
    const id = request.params.id;
    await options.owners.check(request.caller, id);
    const stream = streamOf(request.query.stream);
    if (!stream) {
      const entries = GENERATION_ID.test(id) ? await readLog(engine, id) : [];
      if (entries.length === 0) throw new LifelineError("generation_not_found");
      return reply.headers(answerHeaders({ id, replayed: false })).send(responseOf(id, entries));
    }
    const after = startingAfterOf(request.query.starting_after, request.headers[HEADERS.lastEventId]);
    const start = await startOf(engine, options.metrics, id, { epoch: undefined, offset: 0 });
    if (after >= 0) options.metrics.resumes.inc();
    request.log.info({ generation: id, startingAfter: after }, "response stream opened");
    return openStream(reply, id, after, answerHeaders({ id, replayed: false }), start.kind === "follow" ? start.firstPage : undefined);
  });

  app.post<{ Params: { id: string } }>(OPENAI_PATHS.cancelResponse, async (request, reply) => {
    const id = request.params.id;
    if (!GENERATION_ID.test(id)) throw new LifelineError("generation_not_found");
    await options.owners.check(request.caller, id);
    const result = await engine.cancel(id);
    if (result === "notFound") throw new LifelineError("generation_not_found");
    if (result === "cancelled") {
      options.metrics.answersFinished.inc({ outcome: "cancelled" });
      request.log.info({ generation: id }, "response cancelled");
    }
    // Idempotent: a response that already ended is answered as it stands.
    return reply.headers(answerHeaders({ id, replayed: false })).send(responseOf(id, await readLog(engine, id)));
  });
}

/** The response object a log stands for now. */
function responseOf(id: string, entries: readonly Entry[]): Record<string, unknown> {
  const events = new ResponseEvents(id);
  for (const entry of entries) events.apply(entry);
  return events.response();
}

function streamOf(value: unknown): boolean {
  if (value === undefined || value === "false") return false;
  if (value === "true") return true;
  throw new LifelineError("invalid_request", "stream must be true or false.");
}

/** `starting_after` (or, from a reconnecting EventSource, `Last-Event-ID`): a sequence number; -1 when absent. */
function startingAfterOf(query: unknown, lastEventId: string | string[] | undefined): number {
  const text = query ?? (typeof lastEventId === "string" && lastEventId !== "" ? lastEventId : undefined);
  if (text === undefined) return -1;
  if (typeof text !== "string" || !/^\d{1,15}$/.test(text)) {
    throw new LifelineError("invalid_request", "starting_after must be a sequence number (0, 1, 2, …).");
  }
  return Number(text);
}
