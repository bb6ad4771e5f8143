import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { encodeSseFrame } from "../../../src/core/wire.ts";

/** What a scripted handler is given: the request number (from 1), the request and the response. */
export type Script = (n: number, req: IncomingMessage, res: ServerResponse) => void;

/** A real HTTP server whose answers a test writes by hand, to play a misbehaving gateway. */
export interface ScriptedServer {
  readonly url: string;
  /** Every request so far: method, path and headers. */
  readonly requests: { method: string; url: string; headers: IncomingMessage["headers"] }[];
  close(): Promise<void>;
}

export async function startScriptedServer(script: Script): Promise<ScriptedServer> {
  const requests: ScriptedServer["requests"] = [];
  const server = createServer((req, res) => {
    requests.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers });
    script(requests.length, req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const AT = "2026-11-25T10:00:00.000Z";

/** Log entries as a gateway would send them; cursors are `c<offset>` to prove the client treats them as opaque. */
export const log = {
  created: (offset = 1) => ({ offset, type: "created", at: AT, attempt: 0, request: { model: "sim", messages: [] } }),
  started: (offset: number) => ({ offset, type: "started", at: AT, attempt: 1, worker: "w", model: "sim" }),
  delta: (offset: number, text: string) => ({ offset, type: "delta", at: AT, attempt: 1, text }),
  rewind: (offset: number, toOffset: number) => ({ offset, type: "rewind", at: AT, attempt: 1, toOffset }),
  completed: (offset: number) => ({
    offset,
    type: "completed",
    at: AT,
    attempt: 1,
    finishReason: "stop",
    usage: { promptTokens: 1, completionTokens: 1 },
  }),
};

/** Opens an event stream and writes these entries (or `"reset"`) as SSE frames. */
export function sse(res: ServerResponse, items: readonly ({ offset: number; type: string } | "reset")[], end = false): void {
  res.writeHead(200, { "content-type": "text/event-stream" });
  for (const item of items) {
    if (item === "reset") res.write(encodeSseFrame({ id: "0", event: "reset", data: "{}" }));
    else res.write(encodeSseFrame({ id: `c${item.offset}`, event: item.type, data: JSON.stringify(item) }));
  }
  if (end) res.end();
}

export function jsonError(res: ServerResponse, status: number, code: string): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify({ error: { code, message: code } }));
}

/** Answers a long-poll request with these entries (or `"reset"`); the response's cursor is the last one's. */
export function pollAnswer(
  res: ServerResponse,
  items: readonly ({ offset: number; type: string } | "reset")[],
  ended = false,
  cursor?: string,
): void {
  const events = items.map((item) => (item === "reset" ? { type: "reset" } : { type: "entry", cursor: `c${item.offset}`, entry: item }));
  const last = items[items.length - 1];
  const next = cursor ?? (last === undefined ? "0" : last === "reset" ? "0" : `c${last.offset}`);
  res.writeHead(200, { "content-type": "application/json" });
  res.end(JSON.stringify({ events, cursor: next, ended }));
}
