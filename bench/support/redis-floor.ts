import { createServer, type Server, type ServerResponse } from "node:http";
import { Redis } from "ioredis";
import { stampEntry, type EntryBody, type GenerationRequest } from "../../src/core/entries.ts";
import { encodeSseFrame } from "../../src/core/wire.ts";
import type { ModelProvider } from "../../src/llm/provider.ts";
import { answerRequestOf, listenOnLoopback, openSse } from "./sse-server.ts";

/** A running floor server. */
export interface RedisFloor {
  readonly url: string;
  close(): Promise<void>;
}

/** Seconds a finished stream is kept, as Lifeline's default retention. */
const RETENTION_SECONDS = 86_400;

/**
 * The floor: the least durable work a hand-written server can do on the same Redis, and so a bound
 * on what Lifeline can reach there. Per token it XADDs the entry to the answer's stream and
 * SPUBLISHes its offset, both pipelined on one connection (ioredis auto-pipelining: all commands
 * of one event-loop turn go out in one write). One subscriber connection receives the
 * notifications and wakes the answer's SSE response, which XRANGEs the new entries and writes
 * them as they are stored. Clients therefore only ever see what Redis holds.
 *
 * No queue, no lease, no fence, no idempotency, no second process: the model runs in the request
 * that reads it, and a server that dies takes its answers with it. The entries have the same shape
 * and framing as Lifeline's, stored as their final JSON (and their type beside it) so nothing is
 * parsed or re-encoded on the way out.
 *
 * `GET /floor?content=…&seed=…&max_tokens=…` starts one answer and streams it.
 */
export async function startRedisFloor(model: ModelProvider, redisUrl: string, prefix: string): Promise<RedisFloor> {
  const commands = new Redis(redisUrl, { enableAutoPipelining: true, connectionName: "floor" });
  const subscriber = new Redis(redisUrl, { connectionName: "floor-sub" });
  /** Channel → the wake-up of the response that reads that answer. */
  const readers = new Map<string, () => void>();
  subscriber.on("smessage", (channel: string) => readers.get(channel)?.());
  let answers = 0;

  const server: Server = createServer((req, res) => {
    const request = answerRequestOf(req, res, "/floor");
    if (request === undefined) return;
    const id = `${process.pid}-${++answers}`;
    void serveAnswer(res, request, { log: `${prefix}:{${id}}:log`, channel: `${prefix}:{${id}}:n` });
  });

  async function serveAnswer(res: ServerResponse, request: GenerationRequest, keys: { log: string; channel: string }): Promise<void> {
    const closed = openSse(res);

    // Reader: on each notification, XRANGE everything after the last entry sent. A notification
    // that arrives while a read is under way marks the reader dirty, and it reads once more.
    let sent = 0;
    let reading = false;
    let dirty = false;
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      readers.delete(keys.channel);
      subscriber.sunsubscribe(keys.channel).catch(() => undefined);
      res.end();
    };
    const pull = async (): Promise<void> => {
      if (reading) {
        dirty = true;
        return;
      }
      reading = true;
      try {
        do {
          dirty = false;
          const rows = await commands.xrange(keys.log, `(${sent}-0`, "+");
          for (const [streamId, fields] of rows) {
            const [, type = "", , json = ""] = fields;
            sent = Number(streamId.slice(0, streamId.indexOf("-")));
            res.write(encodeSseFrame({ id: String(sent), event: type, data: json }));
            if (type === "completed") return finish();
          }
        } while (dirty && !finished);
      } catch (error) {
        if (!closed.signal.aborted) console.error("floor read failed", error);
        finish();
      } finally {
        reading = false;
      }
    };
    readers.set(keys.channel, () => void pull());
    closed.signal.addEventListener("abort", finish);
    await subscriber.ssubscribe(keys.channel);

    // Writer: every entry is XADDed at its offset and announced, pipelined, without waiting for
    // Redis between tokens (commands on one connection run in the order they were sent).
    let offset = 0;
    const store = (body: EntryBody): void => {
      const entry = stampEntry(body, ++offset, new Date().toISOString());
      commands.xadd(keys.log, `${offset}-0`, "t", body.type, "e", JSON.stringify(entry)).catch(onStoreError);
      if (body.type === "completed") commands.expire(keys.log, RETENTION_SECONDS).catch(onStoreError);
      commands.spublish(keys.channel, String(offset)).catch(onStoreError);
    };
    const onStoreError = (error: unknown): void => {
      if (!closed.signal.aborted) console.error("floor write failed", error);
      closed.abort();
    };
    store({ type: "created", attempt: 0, request });
    store({ type: "started", attempt: 1, worker: "floor", model: model.name });
    try {
      for await (const event of model.stream({ request, prefix: "", signal: closed.signal })) {
        if (event.type === "token") store({ type: "delta", attempt: 1, text: event.text });
        else if (event.type === "finish") store({ type: "completed", attempt: 1, finishReason: event.finishReason, usage: event.usage });
      }
    } catch {
      // The client went away; the stream stays as far as it got.
    }
  }

  await Promise.all([commands.ping(), subscriber.ping()]);
  const listening = await listenOnLoopback(server);
  return {
    url: listening.url,
    close: async () => {
      await listening.close();
      await Promise.all([commands.quit(), subscriber.quit()]);
    },
  };
}
