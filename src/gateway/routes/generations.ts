import type { FastifyInstance } from "fastify";
import { allows } from "../../core/api-keys.ts";
import { parseEntryOffset } from "../../core/cursor.ts";
import { LifelineError } from "../../core/errors.ts";
import { parseGenerationRequest } from "../../core/request.ts";
import { ROUTE_PATHS, routes } from "../../core/routes.ts";
import { HEADERS } from "../../core/wire.ts";
import { GENERATION_ID } from "../../core/generation-id.ts";
import type { Engine } from "../../engine/port.ts";
import { readLog } from "../../engine/read-log.ts";
import type { Metrics } from "../../observability/metrics.ts";
import { tenantOf } from "../auth/caller.ts";
import type { Authenticator } from "../auth/authentication.ts";
import type { Owners } from "../auth/owners.ts";
import { viewOf } from "../generation-view.ts";
import { idempotencyKeyOf, type GenerationStarter } from "../start-generation.ts";
import { timelineOf } from "../../projections/timeline.ts";

export interface GenerationRoutesOptions {
  readonly engine: Engine;
  /** Who may see which generation. */
  readonly owners: Owners;
  /** Starts generations under the caller's tenant and limits. */
  readonly starter: GenerationStarter;
  /** Who is asking, and the read tokens it hands to browsers. */
  readonly auth: Authenticator;
  readonly metrics: Metrics;
  /** Model names this deployment serves. */
  readonly models: () => readonly string[];
}

/** `POST /v1/generations`, `GET /v1/generations/:id`, `POST /v1/generations/:id/cancel`. */
export function generationRoutes(app: FastifyInstance, options: GenerationRoutesOptions): void {
  const { engine, metrics } = options;

  app.post(ROUTE_PATHS.generations, async (request, reply) => {
    if (!isJson(request.headers["content-type"])) throw new LifelineError("unsupported_media_type");
    const key = idempotencyKeyOf(request.headers);
    const parsed = parseGenerationRequest(request.body);
    if (!parsed.ok) throw new LifelineError("invalid_request", undefined, parsed.issues);
    const started = await options.starter.start(parsed.request, key, request.caller, request.headers.traceparent);
    if (started.replayed) void reply.header(HEADERS.idempotentReplayed, "true");
    request.log.info({ generation: started.id, replay: started.replayed }, "generation accepted");
    // A server that holds a key gets a read token for its page with each generation it starts.
    const token = request.caller.kind === "key" ? await options.auth.tokens.issue(started.id, tenantOf(request.caller)) : undefined;
    return reply.status(201).send({
      id: started.id,
      status: started.status,
      links: linksOf(started.id),
      ...(token ? { token: token.token, tokenExpiresAt: token.expiresAt } : {}),
    });
  });

  app.post<{ Params: { id: string } }>(ROUTE_PATHS.token, async (request) => {
    const id = request.params.id;
    await options.owners.check(request.caller, id);
    // A key that may not cancel gets a token that may not either.
    const readOnly = request.caller.kind === "key" && !allows(request.caller.holder.scopes, "generations:create");
    const { token, expiresAt } = await options.auth.tokens.issue(id, await options.owners.tenant(id), undefined, readOnly);
    return { id, token, tokenExpiresAt: expiresAt };
  });

  app.get<{ Params: { id: string } }>(ROUTE_PATHS.generation, async (request) => {
    await options.owners.check(request.caller, request.params.id);
    const view = await viewOf(engine, request.params.id);
    if (!view) throw new LifelineError("generation_not_found");
    const { request: _request, ...body } = view;
    return body;
  });

  app.get<{ Params: { id: string }; Querystring: { until?: string } }>(ROUTE_PATHS.timeline, async (request) => {
    const id = request.params.id;
    await options.owners.check(request.caller, id);
    const until = untilOf(request.query.until);
    const entries = GENERATION_ID.test(id) ? await readLog(engine, id, until) : [];
    if (entries.length === 0) throw new LifelineError("generation_not_found");
    return timelineOf(id, entries);
  });

  app.post<{ Params: { id: string } }>(ROUTE_PATHS.cancel, async (request, reply) => {
    const id = request.params.id;
    if (!GENERATION_ID.test(id)) throw new LifelineError("generation_not_found");
    await options.owners.check(request.caller, id);
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
