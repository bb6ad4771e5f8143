import type { FastifyInstance } from "fastify";
import { parseEntryOffset } from "../../core/cursor.ts";
import { foldGeneration, type GenerationView } from "../../core/fold.ts";
import { LifelineError } from "../../core/errors.ts";
import { parseGenerationRequest } from "../../core/request.ts";
import { ROUTE_PATHS, routes } from "../../core/routes.ts";
import { HEADERS } from "../../core/wire.ts";
import { GENERATION_ID } from "../../core/generation-id.ts";
import type { Engine } from "../../engine/port.ts";
import { readLog } from "../../engine/read-log.ts";
import type { Metrics } from "../../observability/metrics.ts";
import { timelineOf } from "../../projections/timeline.ts";

export interface GenerationRoutesOptions {
  readonly engine: Engine;
  readonly metrics: Metrics;
  /** Model names this deployment serves. */
  readonly models: () => readonly string[];
}

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

/** `POST /v1/generations`, `GET /v1/generations/:id`, `POST /v1/generations/:id/cancel`. */
export function generationRoutes(app: FastifyInstance, options: GenerationRoutesOptions): void {
  const { engine, metrics } = options;

  app.post(ROUTE_PATHS.generations, async (request, reply) => {
    if (!isJson(request.headers["content-type"])) throw new LifelineError("unsupported_media_type");
    const key = request.headers[HEADERS.idempotencyKey];
    if (key !== undefined && (typeof key !== "string" || !IDEMPOTENCY_KEY.test(key))) {
      throw new LifelineError("invalid_header", "Idempotency-Key must be 1 to 255 visible ASCII characters.");
    }
    const parsed = parseGenerationRequest(request.body);
    if (!parsed.ok) throw new LifelineError("invalid_request", undefined, parsed.issues);
    if (!options.models().includes(parsed.request.model)) {
      throw new LifelineError("unknown_model", `No model named "${parsed.request.model}". Known: ${options.models().join(", ")}.`);
    }
    const created = await engine.create(parsed.request, key === undefined ? {} : { idempotencyKey: key });
    if (created.kind === "idempotencyConflict") throw new LifelineError("idempotency_key_reused");
    const status = created.kind === "created" ? "queued" : ((await viewOf(engine, created.id))?.status ?? "queued");
    if (created.kind === "existing") void reply.header(HEADERS.idempotentReplayed, "true");
    request.log.info({ generation: created.id, replay: created.kind === "existing" }, "generation accepted");
    return reply.status(201).send({ id: created.id, status, links: linksOf(created.id) });
  });

  app.get<{ Params: { id: string } }>(ROUTE_PATHS.generation, async (request) => {
    const view = await viewOf(engine, request.params.id);
    if (!view) throw new LifelineError("generation_not_found");
    const { request: _request, ...body } = view;
    return body;
  });

  app.get<{ Params: { id: string }; Querystring: { until?: string } }>(ROUTE_PATHS.timeline, async (request) => {
    const id = request.params.id;
    const until = untilOf(request.query.until);
    const entries = GENERATION_ID.test(id) ? await readLog(engine, id, until) : [];
    if (entries.length === 0) throw new LifelineError("generation_not_found");
    return timelineOf(id, entries);
  });

  app.post<{ Params: { id: string } }>(ROUTE_PATHS.cancel, async (request, reply) => {
    const id = request.params.id;
    if (!GENERATION_ID.test(id)) throw new LifelineError("generation_not_found");
    const result = await engine.cancel(id);
    if (result === "notFound") throw new LifelineError("generation_not_found");
    if (result === "alreadyFinished") {
      const view = await viewOf(engine, id);
      if (view?.status !== "cancelled") throw new LifelineError("already_finished", `The generation already ${view?.status}.`);
    } else {
      metrics.answersFinished.inc({ outcome: "cancelled" });
      request.log.info({ generation: id }, "generation cancelled");
    }
    return reply.status(202).send({ id, status: "cancelled" });
  });
}

/** `?until=`: an entry offset (1, 2, …) to replay up to; absent is the whole log. */
function untilOf(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  const offset = typeof value === "string" ? parseEntryOffset(value) : undefined;
  if (offset === undefined) throw new LifelineError("invalid_request", "until must be an entry offset (1, 2, …).");
  return offset;
}

function isJson(contentType: string | undefined): boolean {
  return contentType !== undefined && /^application\/json\s*(;|$)/i.test(contentType);
}

function linksOf(id: string): Record<string, string> {
  return {
    self: routes.generation(id),
    events: routes.events(id),
    poll: routes.poll(id),
    timeline: routes.timeline(id),
    cancel: routes.cancel(id),
  };
}

/** The generation's state folded from its whole log; `undefined` when it does not exist. */
export async function viewOf(engine: Engine, id: string): Promise<GenerationView | undefined> {
  if (!GENERATION_ID.test(id)) return undefined;
  const entries = await readLog(engine, id);
  return entries.length === 0 ? undefined : foldGeneration(id, entries);
}
