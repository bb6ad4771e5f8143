/**
 * The `resumable-stream` side of `bench/peers.ts`: a child process wired the way that library's
 * README wires a route pair, on the bench's own Redis (`REDIS_URL`, keys under `KEY_PREFIX`).
 *
 *   POST /answers/:id  starts the answer: `createNewResumableStream(id, makeStream)`, where
 *                      makeStream fetches the model (`MODEL_URL`), parses its SSE and yields one
 *                      SSE frame per token (`data: <token>`), then `event: end`. The POST answers
 *                      201 once the stream exists; nobody reads its own copy (the readers follow).
 *   GET  /answers/:id  follows it: `resumeExistingStream(id)` streamed out as `text/event-stream`.
 *
 * So every token a reader gets crossed Redis pub/sub (PUBLISH from the producer, the message on
 * the subscriber connection), as every token of Lifeline crosses its log.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { once } from "node:events";
import { Redis } from "ioredis";
import { createResumableStreamContext } from "resumable-stream/ioredis";
import { SseParser } from "../../src/core/wire.ts";

const redisUrl = required("REDIS_URL");
const modelUrl = required("MODEL_URL");
const context = createResumableStreamContext({
  keyPrefix: required("KEY_PREFIX"),
  waitUntil: null,
  publisher: new Redis(redisUrl, { connectionName: "rs-publisher" }),
  subscriber: new Redis(redisUrl, { connectionName: "rs-subscriber" }),
});

function required(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === "") throw new Error(`rs-producer needs ${name}`);
  return value;
}

interface ChatChunk {
  readonly choices?: readonly { readonly delta?: { readonly content?: string }; readonly finish_reason?: string | null }[];
}

/** The model's answer as SSE frames for the readers: one per token, then `event: end`. */
function modelFrames(content: string, maxTokens: number): ReadableStream<string> {
  let body: ReadableStreamDefaultReader<Uint8Array> | undefined;
  const decoder = new TextDecoder();
  const pending: string[] = [];
  let finished = false;
  let ended = false;
  const parser = new SseParser((message) => {
    if (message.data === "[DONE]") {
      finished = true;
      return;
    }
    const choice = (JSON.parse(message.data) as ChatChunk).choices?.[0];
    if (choice?.delta?.content) pending.push(`data: ${choice.delta.content}\n\n`);
    if (choice?.finish_reason) pending.push(`event: end\ndata: ${choice.finish_reason}\n\n`);
  });
  return new ReadableStream<string>({
    async pull(controller) {
      if (body === undefined) {
        const response = await fetch(`${modelUrl}/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ model: "stamped", messages: [{ role: "user", content }], stream: true, max_tokens: maxTokens }),
        });
        if (!response.ok || response.body === null) throw new Error(`the model answered ${response.status}`);
        body = response.body.getReader();
      }
      while (pending.length === 0 && !finished && !ended) {
        const { done, value } = await body.read();
        if (done) ended = true;
        else parser.push(decoder.decode(value, { stream: true }));
      }
      for (const frame of pending.splice(0)) controller.enqueue(frame);
      if (finished || ended) controller.close();
    },
  });
}

async function readJson(req: IncomingMessage): Promise<{ content: string; max_tokens: number }> {
  let text = "";
  req.setEncoding("utf8");
  for await (const chunk of req) text += chunk as string;
  return JSON.parse(text) as { content: string; max_tokens: number };
}

async function start(id: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { content, max_tokens } = await readJson(req);
  // The producer feeds Redis whether or not this copy is read. It is left unread rather than
  // cancelled: enqueueing into a cancelled stream throws (caught by the library) on every chunk.
  const stream = await context.createNewResumableStream(id, () => modelFrames(content, max_tokens));
  res.writeHead(stream ? 201 : 409, { "content-type": "application/json" }).end(JSON.stringify({ id }));
}

async function follow(id: string, res: ServerResponse): Promise<void> {
  const stream = await context.resumeExistingStream(id);
  if (!stream) {
    res.writeHead(stream === null ? 204 : 404).end();
    return;
  }
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  const reader = stream.getReader();
  res.on("close", () => void reader.cancel().catch(() => undefined));
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (value !== "" && !res.write(value)) await once(res, "drain");
  }
  res.end();
}

const server = createServer((req, res) => {
  const match = /^\/answers\/([A-Za-z0-9_-]+)$/.exec(req.url ?? "");
  const id = match?.[1];
  const handled =
    id === undefined
      ? Promise.resolve(void res.writeHead(404).end())
      : req.method === "POST"
        ? start(id, req, res)
        : req.method === "GET"
          ? follow(id, res)
          : Promise.resolve(void res.writeHead(405).end());
  handled.catch((error: unknown) => {
    if (!res.headersSent) res.writeHead(500).end(String(error));
    else res.destroy();
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("the producer did not listen on TCP");
  process.send?.({ type: "ready", url: `http://127.0.0.1:${address.port}` });
});
process.on("disconnect", () => process.exit(0));
