import { routes } from "../core/routes.ts";
import { HEADERS, LONG_POLL } from "../core/wire.ts";
import { sleep } from "./backoff.ts";
import type { FetchFunction } from "./sse-transport.ts";
import { failedSession, parseEntry, reasonOf, type SessionEnd, type Transport } from "./transport.ts";

/** After an empty answer that came back early (a proxy that does not hold requests), wait this long before the next poll. */
const EARLY_EMPTY_PAUSE_MS = 250;

/**
 * HTTP long-poll: plain GET requests that get through where neither an event stream nor a
 * WebSocket does. One session is a chain of polls, each sending back the cursor the last one
 * returned; `waitMs` (how long the server may hold a request) stays below the heartbeat watchdog,
 * so a held request never looks like a dead link.
 */
export function pollTransport(baseUrl: string, fetchFn: FetchFunction, waitMs: number): Transport {
  const wait = Math.max(0, Math.min(LONG_POLL.maxWaitMs, Math.floor(waitMs)));
  return {
    name: "long-poll",
    async session(id, cursor, sink, signal, token): Promise<SessionEnd> {
      const path = `${baseUrl}${routes.poll(id, { waitMs: wait, token })}`;
      let at = cursor;
      let opened = false;
      for (;;) {
        const asked = Date.now();
        const headers: Record<string, string> = { accept: "application/json" };
        if (at !== undefined) headers[HEADERS.lastEventId] = at;
        let res: Response;
        let body: unknown;
        try {
          ({ res, body } = await pollOnce(fetchFn, path, headers, signal));
          if (res.status === 204) return { kind: "ended" };
          if (res.status !== 200) return await failedSession(res);
        } catch (error) {
          return { kind: "dropped", reason: signal.aborted ? reasonOf(signal.reason) : reasonOf(error) };
        }
        const answer = parsePoll(body);
        if (!answer) return { kind: "dropped", reason: "the answer is not a poll response" };
        if (!opened) {
          opened = true;
          sink.opened();
        }
        sink.alive();
        for (const event of answer.events) {
          if (signal.aborted) break;
          if (event.type === "reset") sink.reset("0");
          else if (event.type === "entry") sink.entry(event.entry, event.cursor);
        }
        if (signal.aborted) return { kind: "dropped", reason: reasonOf(signal.reason) };
        if (answer.ended) return { kind: "ended" };
        at = answer.cursor;
        if (answer.events.length === 0 && (wait === 0 || Date.now() - asked < wait / 2)) {
          await sleep(EARLY_EMPTY_PAUSE_MS, signal).catch(() => undefined);
        }
      }
    },
  };
}

/**
 * One poll, under a signal of its own tied to the session's for as long as the poll lasts: Node's
 * fetch leaves a listener on every signal it is given (about 200 left after 500 polls), so a
 * session of thousands of polls must not hand its own signal to each.
 */
async function pollOnce(
  fetchFn: FetchFunction,
  path: string,
  headers: Record<string, string>,
  session: AbortSignal,
): Promise<{ res: Response; body: unknown }> {
  const poll = new AbortController();
  const abort = (): void => poll.abort(session.reason);
  if (session.aborted) abort();
  else session.addEventListener("abort", abort, { once: true });
  try {
    const res = await fetchFn(path, { headers, signal: poll.signal, cache: "no-store" });
    return { res, body: res.status === 200 ? await res.json() : undefined };
  } finally {
    session.removeEventListener("abort", abort);
  }
}

type ParsedEvent =
  | { readonly type: "reset" }
  | { readonly type: "entry"; readonly entry: NonNullable<ReturnType<typeof parseEntry>>; readonly cursor: string }
  | { readonly type: "other" };

/** A poll response checked for what the session relies on; `undefined` when it is not one. Unknown events are kept as `other` and skipped. */
function parsePoll(value: unknown): { events: ParsedEvent[]; cursor: string; ended: boolean } | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const body = value as { events?: unknown; cursor?: unknown; ended?: unknown };
  if (!Array.isArray(body.events) || typeof body.cursor !== "string" || typeof body.ended !== "boolean") return undefined;
  const events: ParsedEvent[] = [];
  for (const raw of body.events as unknown[]) {
    const event = (typeof raw === "object" && raw !== null ? raw : {}) as { type?: unknown; cursor?: unknown; entry?: unknown };
    if (event.type === "reset") {
      events.push({ type: "reset" });
      continue;
    }
    if (event.type !== "entry") {
      events.push({ type: "other" });
      continue;
    }
    const entry = parseEntry(event.entry);
    // An entry the follower cannot use ends the response here: what follows it would be a gap.
    if (!entry || typeof event.cursor !== "string") return undefined;
    events.push({ type: "entry", entry, cursor: event.cursor });
  }
  return { events, cursor: body.cursor, ended: body.ended };
}
