import type { FastifyInstance, FastifyReply } from "fastify";
import type { ServerResponse } from "node:http";
import { formatCursor, parseCursor, type Cursor } from "../../core/cursor.ts";
import { isTerminal, type Entry } from "../../core/entries.ts";
import { LifelineError } from "../../core/errors.ts";
import { HEADERS, RESET_EVENT, SSE_PING, encodeSseFrame } from "../../core/wire.ts";
import { GENERATION_ID } from "../../engine/ids.ts";
import type { Engine } from "../../engine/port.ts";
import type { Metrics } from "../../observability/metrics.ts";

export interface EventRoutesOptions {
  readonly engine: Engine;
  readonly metrics: Metrics;
  readonly heartbeatMs: number;
  /** Aborts when the gateway shuts down: open streams end so clients resume elsewhere. */
  readonly shutdown: AbortSignal;
}

const READ_BATCH = 256;

/** Where a stream stands: the last entry sent, and the attempt that wrote it when that is checked. */
interface Position {
  readonly offset: number;
  readonly attempt: number | undefined;
}

const START: Position = { offset: 0, attempt: undefined };

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

  app.get<{ Params: { id: string }; Querystring: { from?: string } }>(
    "/v1/generations/:id/events",
    async (request, reply) => {
      const id = request.params.id;
      const cursor = cursorOf(request.headers[HEADERS.lastEventId], request.query.from);
      const head = GENERATION_ID.test(id) ? await engine.head(id) : undefined;
      if (!head) throw new LifelineError("generation_not_found");

      const from = await positionOf(engine, id, cursor, head.lastOffset);
      if (from && head.terminal && from.offset === head.lastOffset) return reply.status(204).send();
      if (!from) metrics.resets.inc();
      else if (from.offset > 0) metrics.resumes.inc();

      const log = request.log.child({ generation: id });
      log.info({ from: cursor.offset, reset: !from }, "event stream opened");
      await streamLog(reply, { ...options, id, from: from ?? START, reset: !from });
      log.info("event stream closed");
      return reply;
    },
  );
}

/** Last-Event-ID (what a reconnecting EventSource sends) wins over `?from=`. */
function cursorOf(header: string | string[] | undefined, query: unknown): Cursor {
  if (query !== undefined && typeof query !== "string") throw new LifelineError("invalid_cursor", "Give one `from` cursor.");
  const text = typeof header === "string" && header !== "" ? header : query;
  if (text === undefined || text === "") return { epoch: undefined, offset: 0 };
  const cursor = parseCursor(text);
  if (!cursor) throw new LifelineError("invalid_cursor", `"${text.slice(0, 64)}" is not a cursor.`);
  return cursor;
}

/** Where to continue after `cursor`, or `undefined` when the log cannot vouch for it. */
async function positionOf(engine: Engine, id: string, cursor: Cursor, lastOffset: number): Promise<Position | undefined> {
  if (cursor.offset > lastOffset) return undefined;
  if (cursor.offset === 0 || !engine.replicatesAsynchronously || cursor.epoch === undefined) {
    return { offset: cursor.offset, attempt: undefined };
  }
  const attempt = Number(cursor.epoch);
  const [entry] = await engine.read(id, cursor.offset - 1, 1);
  return entry?.attempt === attempt ? { offset: cursor.offset, attempt } : undefined;
}

interface StreamPlan extends EventRoutesOptions {
  readonly id: string;
  readonly from: Position;
  readonly reset: boolean;
}

async function streamLog(reply: FastifyReply, plan: StreamPlan): Promise<void> {
  const { engine, metrics } = plan;
  const checked = engine.replicatesAsynchronously;
  const idOf = (entry: Entry): string => (checked ? formatCursor(entry.offset, String(entry.attempt)) : formatCursor(entry.offset));
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
    let at = plan.from;
    while (!signal.aborted) {
      const verify = checked && at.attempt !== undefined && at.offset > 0;
      const page = await engine.read(plan.id, verify ? at.offset - 1 : at.offset, READ_BATCH);
      if (verify) {
        const standing = page.shift();
        if (!standing) {
          // The log is shorter than what this client saw: wait for its writer to restore it, or
          // for another attempt to pass this offset (then the check below decides).
          const head = await engine.head(plan.id);
          if (head?.terminal) {
            metrics.resets.inc();
            await reset();
            at = START;
          } else {
            await engine.wait(plan.id, at.offset - 1, signal);
          }
          continue;
        }
        if (standing.attempt !== at.attempt) {
          metrics.resets.inc();
          await reset();
          at = START;
          continue;
        }
      }
      for (const entry of page) {
        await write(res, encodeSseFrame({ id: idOf(entry), event: entry.type, data: JSON.stringify(entry) }), signal);
        at = { offset: entry.offset, attempt: entry.attempt };
        if (isTerminal(entry)) return;
      }
      if (page.length === 0 && !(await engine.head(plan.id))) return; // the log is gone (expired, lost)
      // A short page means the reader is at the end: wait (wait returns at once if more came).
      if (page.length < READ_BATCH - (verify ? 1 : 0)) await engine.wait(plan.id, at.offset, signal);
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
