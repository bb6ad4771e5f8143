import { createServer, type Server } from "node:http";
import type { EntryBody } from "../../src/core/entries.ts";
import { stampEntry } from "../../src/core/entries.ts";
import { encodeSseFrame } from "../../src/core/wire.ts";
import type { ModelProvider } from "../../src/llm/provider.ts";
import { answerRequestOf, listenOnLoopback, openSse } from "./sse-server.ts";

/** A running baseline server. */
export interface DirectPipe {
  readonly url: string;
  close(): Promise<void>;
}

/**
 * The baseline: the model streamed straight into an SSE response, one frame per token, with the
 * gateway's framing and entry shapes but no log, no queue and no worker. What it costs is what any
 * streaming proxy costs; what Lifeline costs beyond it is the price of durability.
 *
 * `GET /direct?content=…&seed=…&max_tokens=…` answers one user message.
 */
export async function startDirectPipe(model: ModelProvider): Promise<DirectPipe> {
  const server: Server = createServer((req, res) => {
    const request = answerRequestOf(req, res, "/direct");
    if (request === undefined) return;
    const closed = openSse(res);
    let offset = 0;
    const frame = (body: EntryBody): string => {
      const entry = stampEntry(body, ++offset, new Date().toISOString());
      return encodeSseFrame({ id: String(entry.offset), event: entry.type, data: JSON.stringify(entry) });
    };
    res.write(frame({ type: "created", attempt: 0, request }));
    res.write(frame({ type: "started", attempt: 1, worker: "direct", model: model.name }));
    void (async () => {
      try {
        for await (const event of model.stream({ request, prefix: "", signal: closed.signal })) {
          if (event.type === "token") res.write(frame({ type: "delta", attempt: 1, text: event.text }));
          else if (event.type === "finish")
            res.write(frame({ type: "completed", attempt: 1, finishReason: event.finishReason, usage: event.usage }));
        }
      } catch {
        // The client went away; nothing to keep.
      } finally {
        res.end();
      }
    })();
  });
  return listenOnLoopback(server);
}
