import type { FastifyInstance, FastifyReply } from "fastify";
import type { ServerResponse } from "node:http";
import { formatCursor, parseCursor, type Cursor } from "../../core/cursor.ts";
import { isTerminal } from "../../core/entries.ts";
import { LifelineError } from "../../core/errors.ts";
import { HEADERS, RESET_EVENT, SSE_PING, encodeSseFrame } from "../../core/wire.ts";
import { GENERATION_ID } from "../../engine/ids.ts";
import type { Engine, LogHead } from "../../engine/port.ts";
import type { Metrics } from "../../observability/metrics.ts";

export interface EventRoutesOptions {
  readonly engine: Engine;
  readonly metrics: Metrics;
  readonly heartbeatMs: number;
  /** Aborts when the gateway shuts down: open streams end so clients resume elsewhere. */
  readonly shutdown: AbortSignal;
}

const READ_BATCH = 256;

/** `GET /v1/generations/:id/events`: the log as Server-Sent Events, resumable by cursor. */
export function eventRoutes(app: FastifyInstance, options: EventRoutesOptions): void {
  const { engine, metrics } = options;

  app.get<{ Params: { id: string }; Querystring: { from?: string } }>(
    "/v1/generations/:id/events",
    async (request, reply) => {
      const id = request.params.id;
      const cursor = cursorOf(request.headers[HEADERS.lastEventId], request.query.from);
      const head = GENERATION_ID.test(id) ? await engine.head(id) : undefined;
      if (!head) throw new LifelineError("generation_not_found");

      const continuous = vouchesFor(head, cursor);
      if (continuous && head.terminal && cursor.offset === head.lastOffset) return reply.status(204).send();
      if (!continuous) metrics.resets.inc();
      else if (cursor.offset > 0) metrics.resumes.inc();

      const log = request.log.child({ generation: id });
      log.info({ from: cursor.offset, reset: !continuous }, "event stream opened");
      await streamLog(reply, { ...options, id, epoch: head.epoch, after: continuous ? cursor.offset : 0, reset: !continuous });
      log.info("event stream closed");
      return reply;
    },
  );
}

/** Last-Event-ID (what a reconnecting EventSource sends) wins over `?from=`. */
function cursorOf(header: string | string[] | undefined, query: string | undefined): Cursor {
  const text = typeof header === "string" && header !== "" ? header : query;
  if (text === undefined || text === "") return { epoch: undefined, offset: 0 };
  const cursor = parseCursor(text);
  if (!cursor) throw new LifelineError("invalid_cursor", `"${text.slice(0, 64)}" is not a cursor.`);
  return cursor;
}

/** Whether the log still holds, unchanged, everything the cursor claims to have seen. */
function vouchesFor(head: LogHead, cursor: Cursor): boolean {
  if (cursor.offset > head.lastOffset) return false;
  if (cursor.epoch !== undefined && cursor.offset > 0 && cursor.epoch !== head.epoch) return false;
  return true;
}

interface StreamPlan extends EventRoutesOptions {
  readonly id: string;
  readonly epoch: string | undefined;
  readonly after: number;
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
  try {
    // Ask the browser to come back quickly after a cut.
    res.write("retry: 1000\n\n");
    if (plan.reset) {
      await write(res, encodeSseFrame({ id: formatCursor(0, plan.epoch), event: RESET_EVENT, data: JSON.stringify({ reason: "cursor_not_continuous" }) }), signal);
    }
    let after = plan.after;
    while (!signal.aborted) {
      const entries = await engine.read(plan.id, after, READ_BATCH);
      for (const entry of entries) {
        await write(res, encodeSseFrame({ id: formatCursor(entry.offset, plan.epoch), event: entry.type, data: JSON.stringify(entry) }), signal);
        after = entry.offset;
        if (isTerminal(entry)) return;
      }
      // A short page means the reader is at the end: wait (wait returns at once if more came).
      if (entries.length < READ_BATCH) await engine.wait(plan.id, after, signal);
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
