import type { Entry } from "../../src/core/entries.ts";
import { routes } from "../../src/core/routes.ts";
import { SseParser, type SseMessage } from "../../src/core/wire.ts";

export interface SseRead {
  readonly status: number;
  readonly messages: SseMessage[];
  readonly pings: number;
  /** True when the server ended the response; false when we cut it. */
  readonly ended: boolean;
}

export interface SseReadOptions {
  readonly lastEventId?: string;
  readonly from?: string;
  /** Cut the connection once this many messages arrived. */
  readonly cutAfter?: number;
  /** Cut when this returns true for a message. */
  readonly cutWhen?: (message: SseMessage) => boolean;
  readonly signal?: AbortSignal;
  /** More request headers (an `authorization`, say). */
  readonly headers?: Readonly<Record<string, string>>;
}

/** Reads `GET /v1/generations/:id/events` over a real HTTP connection. */
export async function readEvents(baseUrl: string, id: string, options: SseReadOptions = {}): Promise<SseRead> {
  const url = new URL(routes.events(id, { from: options.from }), baseUrl);
  const ctl = new AbortController();
  options.signal?.addEventListener("abort", () => ctl.abort(), { once: true });
  const headers: Record<string, string> = { accept: "text/event-stream", ...options.headers };
  if (options.lastEventId !== undefined) headers["last-event-id"] = options.lastEventId;
  const res = await fetch(url, { headers, signal: ctl.signal });
  const messages: SseMessage[] = [];
  let pings = 0;
  let cut = false;
  const parser = new SseParser(
    (message) => {
      messages.push(message);
      if ((options.cutAfter !== undefined && messages.length >= options.cutAfter) || options.cutWhen?.(message)) {
        cut = true;
        ctl.abort();
      }
    },
    () => pings++,
  );
  if (!res.body) return { status: res.status, messages, pings, ended: true };
  const decoder = new TextDecoder();
  try {
    const reader = res.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parser.push(decoder.decode(value, { stream: true }));
      if (cut) {
        await reader.cancel().catch(() => undefined);
        break;
      }
    }
  } catch (error) {
    if (!cut && !ctl.signal.aborted) throw error;
  }
  return { status: res.status, messages, pings, ended: !cut && !ctl.signal.aborted };
}

/** The log entries carried by SSE messages (everything but `reset`). */
export function entriesOf(messages: readonly SseMessage[]): Entry[] {
  return messages.filter((m) => m.event !== "reset").map((m) => JSON.parse(m.data) as Entry);
}

export async function postJson(
  baseUrl: string,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: unknown; headers: Headers }> {
  const res = await fetch(new URL(path, baseUrl), {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
}

/** Starts a generation and returns its id. */
export async function startGeneration(baseUrl: string, body: unknown, headers: Record<string, string> = {}): Promise<string> {
  const res = await postJson(baseUrl, routes.generations(), body, headers);
  if (res.status !== 201) throw new Error(`POST /v1/generations answered ${res.status}: ${JSON.stringify(res.body)}`);
  return (res.body as { id: string }).id;
}

/**
 * An answer's whole log over SSE, for a test that then checks it: a read refused, or ended before
 * the answer's terminal entry, throws with its status and its last message, which say why.
 */
export async function readAnswer(baseUrl: string, id: string, terminal = "completed"): Promise<Entry[]> {
  const read = await readEvents(baseUrl, id);
  const last = read.messages.at(-1);
  if (read.status !== 200 || !read.ended || last?.event !== terminal) {
    throw new Error(`the read of ${id} ended early: ${JSON.stringify({ status: read.status, ended: read.ended, last })}`);
  }
  return entriesOf(read.messages);
}
