import { routes } from "../core/routes.ts";
import { HEADERS, RESET_EVENT, SseParser, type SseMessage } from "../core/wire.ts";
import { failedSession, parseEntry, reasonOf, type SessionEnd, type Transport, type TransportSink } from "./transport.ts";

/** The `fetch` the SDK calls: the global one or the caller's. */
export type FetchFunction = (input: string, init?: RequestInit) => Promise<Response>;

/**
 * Server-Sent Events over a streaming `fetch` (not `EventSource`: it cannot set headers, report a
 * status, or be watched for heartbeats). Resumes with `Last-Event-ID`, exactly as the server sent it;
 * a read token goes as `?token=`.
 */
export function sseTransport(baseUrl: string, fetchFn: FetchFunction): Transport {
  return {
    name: "sse",
    async session(id, cursor, sink, signal, token): Promise<SessionEnd> {
      const headers: Record<string, string> = { accept: "text/event-stream" };
      if (cursor !== undefined) headers[HEADERS.lastEventId] = cursor;
      let res: Response;
      try {
        // The token as a query parameter: a cross-origin GET without an Authorization header needs no preflight.
        res = await fetchFn(`${baseUrl}${routes.events(id, { token })}`, { headers, signal, cache: "no-store" });
      } catch (error) {
        return { kind: "dropped", reason: signal.aborted ? reasonOf(signal.reason) : reasonOf(error) };
      }
      if (res.status === 204) {
        await res.body?.cancel().catch(() => undefined);
        return { kind: "ended" };
      }
      if (res.status !== 200 || !res.body) return failedSession(res);
      if (!(res.headers.get("content-type") ?? "").startsWith("text/event-stream")) {
        await res.body.cancel().catch(() => undefined);
        return { kind: "dropped", reason: "the answer is not an event stream" };
      }
      sink.opened();
      return readStream(res.body, sink, signal);
    },
  };
}

async function readStream(body: ReadableStream<Uint8Array>, sink: TransportSink, signal: AbortSignal): Promise<SessionEnd> {
  const parser = new SseParser(
    (message) => deliver(message, sink),
    () => sink.alive(),
  );
  const reader = body.getReader();
  const decoder = new TextDecoder();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return { kind: "closed" };
      sink.alive();
      parser.push(decoder.decode(value, { stream: true }));
      if (signal.aborted) return { kind: "dropped", reason: reasonOf(signal.reason) };
    }
  } catch (error) {
    return { kind: "dropped", reason: signal.aborted ? reasonOf(signal.reason) : reasonOf(error) };
  } finally {
    reader.cancel().catch(() => undefined);
  }
}

function deliver(message: SseMessage, sink: TransportSink): void {
  if (message.event === RESET_EVENT) {
    sink.reset(message.id);
    return;
  }
  let data: unknown;
  try {
    data = JSON.parse(message.data);
  } catch {
    return; // not an entry (an event of a later protocol version): skip it, the cursor stays
  }
  const entry = parseEntry(data);
  if (entry) sink.entry(entry, message.id);
}
