import fastifyRateLimit from "@fastify/rate-limit";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { LifelineError } from "../../core/errors.ts";
import { ROUTE_PATHS } from "../../core/routes.ts";
import type { RedisClient } from "../../engine/redis/connection.ts";
import { unavailableGuard } from "../guarded-engine.ts";
import type { Caller } from "./caller.ts";
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

/**
 * Counts one request that no route's hook sees (a WebSocket upgrade, a `subscribe` frame) against
 * its caller's requests per minute, in the counters of the HTTP requests (decision 064). Rejects
 * with `rate_limited` (its `retryAfterSeconds` set) over the limit, with `engine_unavailable` when
 * the counters' store does not answer; an open deployment's caller is not counted.
 */
export type CountRequest = (caller: Caller) => Promise<void>;

/** The {@link CountRequest} of a gateway without a request limit. */
export const UNCOUNTED: CountRequest = () => Promise.resolve();

/** Whose requests a caller's count against: its key, or its read token's generation; nobody in an open deployment. */
function bucketOf(caller: Caller): string | undefined {
  if (caller.kind === "key") return `key:${caller.holder.keyId}`;
  if (caller.kind === "token") return `generation:${caller.generation}`;
  return undefined;
}

function rateLimited(caller: Caller, max: number, retryAfterSeconds: number): LifelineError {
  const whose = caller.kind === "token" ? "with read tokens of this generation" : "with this key";
  return new LifelineError("rate_limited", `More than ${max} requests in a minute ${whose}; retry in ${retryAfterSeconds} s.`, undefined, {
    retryAfterSeconds,
  });
}

/**
 * What the limiter reads of a request (its caller and route, for the key generator, the allow list
 * and a route's group), for a request on the WebSocket, which never passes Fastify's router.
 */
function webSocketRequestOf(caller: Caller): FastifyRequest {
  const request: Pick<FastifyRequest, "caller" | "method"> & { readonly routeOptions: { url: string; config: object } } = {
    caller,
    method: "GET",
    routeOptions: { url: ROUTE_PATHS.websocket, config: {} },
  };
  return request as FastifyRequest;
}

/**
 * Requests per minute per key (decision 035), counted by `@fastify/rate-limit` after the caller is
 * known: in this process, or in Redis so that N gateways enforce one limit. Over the limit: 429
 * `rate_limited` with `Retry-After`. An open deployment (no keys, loopback) and the public routes
 * are not counted. When Redis does not answer, the request is refused with 503 rather than let
 * through uncounted. Returns the count of the WebSocket's upgrades and subscriptions, which share
 * the HTTP requests' counters (decision 064).
 */
export function installRequestLimits(app: FastifyInstance, limits: RequestLimits): CountRequest {
  if (limits.requestsPerMinute <= 0) return UNCOUNTED;
  // Not `global`: that hooks only the routes declared after the plugin has loaded. One preHandler
  // hook for every route instead, once the plugin is there (after the caller is known, onRequest).
  void app.register(fastifyRateLimit, {
    global: false,
    max: limits.requestsPerMinute,
    timeWindow: 60_000,
    ...(limits.redis ? { redis: limits.redis, nameSpace: `${limits.prefix ?? "ll"}:{limits}:` } : {}),
    skipOnError: false,
    allowList: (request) => bucketOf(request.caller) === undefined || accessOf(request.method, request.routeOptions.url) === "public",
    keyGenerator: (request) => bucketOf(request.caller) ?? "open",
    addHeadersOnExceeding: { "x-ratelimit-limit": true, "x-ratelimit-remaining": true, "x-ratelimit-reset": true },
    addHeaders: { "x-ratelimit-limit": true, "x-ratelimit-remaining": true, "x-ratelimit-reset": true, "retry-after": true },
    errorResponseBuilder: (request, context) => rateLimited(request.caller, context.max, Math.ceil(context.ttl / 1000)),
  });
  const counted = unavailableGuard("The request-limit store");
  let check: ReturnType<FastifyInstance["createRateLimit"]> | undefined;
  app.after(() => {
    const limit = app.rateLimit();
    app.addHook(
      "preHandler",
      counted((request: FastifyRequest, reply: FastifyReply) => limit.call(app, request, reply)),
    );
    // Without options: the plugin's own store, so the WebSocket counts in the HTTP requests' counters.
    check = counted(app.createRateLimit());
  });
  return async (caller) => {
    if (bucketOf(caller) === undefined) return;
    // The plugin has loaded before the server listens, so before any upgrade arrives.
    if (check === undefined) throw new Error("A request was counted before the request limits were installed.");
    const limit = await check(webSocketRequestOf(caller));
    if (limit.isAllowed || !limit.isExceeded) return;
    throw rateLimited(caller, limit.max, limit.ttlInSeconds);
  };
}
