import fastifyRateLimit from "@fastify/rate-limit";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { LifelineError } from "../../core/errors.ts";
import type { RedisClient } from "../../engine/redis/connection.ts";
import { unavailableGuard } from "../guarded-engine.ts";
import { accessOf } from "./route-access.ts";

export interface RequestLimits {
  /** Requests per minute per API key (and per read token's generation); 0 turns the limit off. */
  readonly requestsPerMinute: number;
  /** Answers that have not ended, per API key; 0 turns the limit off. @defaultValue 0 */
  readonly answersPerKey?: number;
  /** Model tokens per minute per API key (each start counts its `max_tokens`); 0 turns the limit off. @defaultValue 0 */
  readonly tokensPerMinute?: number;
  /** Open streams (reads, long-polls, WebSocket subscriptions) per API key across gateways; 0 turns the limit off. @defaultValue 0 */
  readonly streamsPerKey?: number;
  /** Where the counters live so that every gateway counts the same ones (the distributed mode). @defaultValue this process */
  readonly redis?: RedisClient;
  /** The Redis key prefix of the counters. @defaultValue "ll" */
  readonly prefix?: string;
}

/** Whose requests a request counts against: its key, or its read token's generation; nobody in an open deployment. */
function bucketOf(request: FastifyRequest): string | undefined {
  const caller = request.caller;
  if (caller.kind === "key") return `key:${caller.holder.keyId}`;
  if (caller.kind === "token") return `generation:${caller.generation}`;
  return undefined;
}

/**
 * Requests per minute per key (decision 035), counted by `@fastify/rate-limit` after the caller is
 * known: in this process, or in Redis so that N gateways enforce one limit. Over the limit: 429
 * `rate_limited` with `Retry-After`. An open deployment (no keys, loopback) and the public routes
 * are not counted. When Redis does not answer, the request is refused with 503 rather than let
 * through uncounted.
 */
export function installRequestLimits(app: FastifyInstance, limits: RequestLimits): void {
  if (limits.requestsPerMinute <= 0) return;
  // Not `global`: that hooks only the routes declared after the plugin has loaded. One preHandler
  // hook for every route instead, once the plugin is there (after the caller is known, onRequest).
  void app.register(fastifyRateLimit, {
    global: false,
    max: limits.requestsPerMinute,
    timeWindow: 60_000,
    ...(limits.redis ? { redis: limits.redis, nameSpace: `${limits.prefix ?? "ll"}:{limits}:` } : {}),
    skipOnError: false,
    allowList: (request) => bucketOf(request) === undefined || accessOf(request.method, request.routeOptions.url) === "public",
    keyGenerator: (request) => bucketOf(request) ?? "open",
    addHeadersOnExceeding: { "x-ratelimit-limit": true, "x-ratelimit-remaining": true, "x-ratelimit-reset": true },
    addHeaders: { "x-ratelimit-limit": true, "x-ratelimit-remaining": true, "x-ratelimit-reset": true, "retry-after": true },
    errorResponseBuilder: (_request, context) =>
      new LifelineError("rate_limited", `More than ${context.max} requests in a minute with this key; retry in ${context.after}.`),
  });
  app.after(() => {
    const limit = app.rateLimit();
    const counted = unavailableGuard("The request-limit store");
    app.addHook(
      "preHandler",
      counted((request: FastifyRequest, reply: FastifyReply) => limit.call(app, request, reply)),
    );
  });
}
