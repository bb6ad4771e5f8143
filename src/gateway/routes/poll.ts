import type { FastifyInstance } from "fastify";
import { formatCursor } from "../../core/cursor.ts";
import { isTerminal } from "../../core/entries.ts";
import { LifelineError } from "../../core/errors.ts";
import { ROUTE_PATHS } from "../../core/routes.ts";
import { HEADERS, LONG_POLL, type PollEvent, type PollResponse } from "../../core/wire.ts";
import { cursorOf, followLog, startOf } from "../log-follower.ts";
import type { EventRoutesOptions } from "./events.ts";

export type PollRoutesOptions = Pick<EventRoutesOptions, "engine" | "metrics" | "shutdown">;

/** One engine page: once something arrived, followLog stops after the page it is in. */
const MAX_EVENTS = 256;

/**
 * `GET /v1/generations/:id/poll`: the log over plain HTTP requests, for networks that let neither
 * an event stream nor a WebSocket through (protocol in `core/wire.ts`). A request returns at once
 * with what the log holds after the cursor, or waits up to `wait_ms` for the first entry and then
 * returns everything there is; it never waits once it has something. It follows the log exactly
 * as SSE does (`followLog`), so cursor checks and `reset` are the same.
 */
export function pollRoutes(app: FastifyInstance, options: PollRoutesOptions): void {
  const { engine, metrics } = options;

  app.get<{ Params: { id: string }; Querystring: { from?: string; wait_ms?: string } }>(ROUTE_PATHS.poll, async (request, reply) => {
    const id = request.params.id;
    const cursor = cursorOf(request.headers[HEADERS.lastEventId], request.query.from);
    const waitMs = waitOf(request.query.wait_ms);

    // Stop waiting when the time is up, the client goes away, the gateway shuts down, or
    // something arrived (followLog then hands over the rest of its page and returns). Plain
    // listeners rather than AbortSignal.any, which on Node 20 keeps every request's signal
    // alive for as long as the gateway's shutdown signal.
    const enough = new AbortController();
    const stop = (): void => enough.abort();
    reply.raw.on("close", stop);
    options.shutdown.addEventListener("abort", stop, { once: true });
    const timer = setTimeout(stop, waitMs);
    const events: PollEvent[] = [];
    let next = formatCursor(cursor.offset, cursor.epoch);
    let ended = false;
    try {
      const start = await startOf(engine, metrics, id, cursor, { countResume: false });
      if (start.kind === "atEnd") return reply.status(204).send();
      if (start.reset) {
        events.push({ type: "reset" });
        next = "0";
      }
      for await (const delivery of followLog(engine, id, start.from, enough.signal)) {
        if (delivery.kind === "reset") {
          metrics.resets.inc();
          events.push({ type: "reset" });
          next = "0";
        } else {
          events.push({ type: "entry", cursor: delivery.cursor, entry: delivery.entry });
          next = delivery.cursor;
          ended = isTerminal(delivery.entry);
        }
        stop();
        if (ended || events.length > MAX_EVENTS) break;
      }
    } finally {
      clearTimeout(timer);
      reply.raw.off("close", stop);
      options.shutdown.removeEventListener("abort", stop);
    }
    const body: PollResponse = { events, cursor: next, ended };
    return reply.header("cache-control", "no-store").send(body);
  });
}

/** `wait_ms`: whole milliseconds from 0 to {@link LONG_POLL.maxWaitMs}; absent is the default. */
function waitOf(value: unknown): number {
  if (value === undefined) return LONG_POLL.defaultWaitMs;
  if (typeof value !== "string" || !/^\d{1,6}$/.test(value) || Number(value) > LONG_POLL.maxWaitMs) {
    throw new LifelineError("invalid_request", `wait_ms must be a whole number of milliseconds from 0 to ${LONG_POLL.maxWaitMs}.`);
  }
  return Number(value);
}
