import type { FastifyInstance, FastifyReply } from "fastify";
import type { ServerResponse } from "node:http";
import { ROUTE_PATHS } from "../../core/routes.ts";
import { HEADERS, RESET_EVENT, SSE_PING, encodeSseFrame } from "../../core/wire.ts";
import type { Engine } from "../../engine/port.ts";
import type { Metrics } from "../../observability/metrics.ts";
import { cursorOf, followLog, startOf, type Position } from "../log-follower.ts";

export interface EventRoutesOptions {
  readonly engine: Engine;
  readonly metrics: Metrics;
  readonly heartbeatMs: number;
  /** Aborts when the gateway shuts down: open streams end so clients resume elsewhere. */
  readonly shutdown: AbortSignal;
}

/**
 * `GET /v1/generations/:id/events`: the log as Server-Sent Events, resumable by cursor.
 *
 * On an engine that can lose acknowledged entries in a failover, each cursor is
 * `<attempt>:<offset>`, and before continuing after it the stream checks that the log still holds
 * that attempt's entry there. When it does not (the entry was lost, and another attempt wrote a
 * different one), the client gets `reset` and the log again from offset 1: never a different text
 * under an old cursor.
 */
export function eventRoutes(app: FastifyInstance, options: EventRoutesOptions): void {
  const { engine, metrics } = options;

  app.get<{ Params: { id: string }; Querystring: { from?: string } }>(ROUTE_PATHS.events, async (request, reply) => {
    const id = request.params.id;
    const cursor = cursorOf(request.headers[HEADERS.lastEventId], request.query.from);
    const start = await startOf(engine, metrics, id, cursor);
    if (start.kind === "atEnd") return reply.status(204).send();

    const log = request.log.child({ generation: id });
    log.info({ from: cursor.offset, reset: start.reset }, "event stream opened");
    await streamLog(reply, { ...options, id, from: start.from, reset: start.reset });
    log.info("event stream closed");
    return reply;
  });
}

interface StreamPlan extends EventRoutesOptions {
  readonly id: string;
  readonly from: Position;
  readonly reset: boolean;
}

async function streamLog(reply: FastifyReply, plan: StreamPlan): Promise<void> {
  const { engine, metrics } = plan;
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache, no-transform",
    connection: "keep-alive",
    "x-accel-buffering": "no",
  });
  const closed = new AbortController();
  const onClose = (): void => closed.abort();
  res.on("close", onClose);
  plan.shutdown.addEventListener("abort", onClose);
  const signal = closed.signal;
  metrics.openStreams.inc();
  const heartbeat = setInterval(() => res.write(SSE_PING), plan.heartbeatMs);
  const reset = (): Promise<void> =>
    write(res, encodeSseFrame({ id: "0", event: RESET_EVENT, data: JSON.stringify({ reason: "cursor_not_continuous" }) }), signal);
  try {
    // Ask the browser to come back quickly after a cut.
    res.write("retry: 1000\n\n");
    if (plan.reset) await reset();
    for await (const delivery of followLog(engine, plan.id, plan.from, signal)) {
      if (signal.aborted) break; // the client is gone: nothing more to write
      if (delivery.kind === "reset") {
        metrics.resets.inc();
        await reset();
        continue;
      }
      const { entry, cursor } = delivery;
      await write(res, encodeSseFrame({ id: cursor, event: entry.type, data: JSON.stringify(entry) }), signal);
    }
  } catch (error) {
    if (!signal.aborted) reply.log.error({ err: error }, "event stream failed");
  } finally {
    clearInterval(heartbeat);
    metrics.openStreams.dec();
    res.off("close", onClose);
    plan.shutdown.removeEventListener("abort", onClose);
    res.end();
  }
}

/** Writes, and waits for the socket to drain when its buffer is full, so a slow reader costs no memory. */
function write(res: ServerResponse, chunk: string, signal: AbortSignal): Promise<void> {
  if (res.write(chunk) || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      res.off("drain", done);
      signal.removeEventListener("abort", done);
      resolve();
    };
    res.on("drain", done);
    signal.addEventListener("abort", done, { once: true });
  });
}
