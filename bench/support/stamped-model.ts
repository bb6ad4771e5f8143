/**
 * The model of `bench/peers.ts`, a child process of its own: an OpenAI-compatible
 * `POST /v1/chat/completions` that streams `chat.completion.chunk` SSE frames, one stamped token
 * (`stamped-token.ts`) per frame. The bench forks it once per phase with the pace in `argv[2]`
 * (JSON `ModelPace`) and talks to it over IPC: clock samples, and for the closed loop the readers'
 * acknowledgements. Every write respects the socket's backpressure (`write()` false → wait for
 * `drain`), so the model never runs ahead of what its reader takes.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { wallNow } from "./protocol.ts";
import { TOKEN_BYTES, parseStampedPrompt, stampToken } from "./stamped-token.ts";

/** How the model emits the tokens of every answer of a phase. */
export type ModelPace =
  /**
   * `tokensPerSecond` per answer, on a fixed schedule from the first token; `tokensPerWrite` frames
   * (default 1) go out in one write, at the time the last of them is due: a model whose tokens
   * come in bursts, so its reader's socket brings several per read.
   */
  | { readonly kind: "paced"; readonly tokensPerSecond: number; readonly firstTokenDelayMs: number; readonly tokensPerWrite?: number }
  /** Only while fewer than `window` tokens of the answer are unreceived by its reader. */
  | { readonly kind: "closed"; readonly window: number; readonly firstTokenDelayMs: number }
  /** As fast as the socket takes them. */
  | { readonly kind: "open"; readonly firstTokenDelayMs: number };

export type ToModel =
  | { readonly type: "clock"; readonly seq: number }
  /** Flattened pairs [answer, tokens received so far, …] from the readers. */
  | { readonly type: "acks"; readonly acks: readonly number[] }
  | { readonly type: "exit" };

export type FromModel =
  { readonly type: "ready"; readonly url: string } | { readonly type: "clock"; readonly seq: number; readonly now: number };

const pace = JSON.parse(process.argv[2] ?? "{}") as ModelPace;
const received = new Map<number, number>();
const waiting = new Map<number, () => void>();

process.on("message", (message: ToModel) => {
  if (message.type === "clock") send({ type: "clock", seq: message.seq, now: wallNow() });
  else if (message.type === "exit") process.exit(0);
  else
    for (let i = 0; i + 1 < message.acks.length; i += 2) {
      const answer = message.acks[i] as number;
      received.set(answer, Math.max(received.get(answer) ?? 0, message.acks[i + 1] as number));
      waiting.get(answer)?.();
    }
});

function send(message: FromModel): void {
  process.send?.(message);
}

/** Resolves once the reader of `answer` has received more than `count` tokens, or `gone()` says to stop waiting. */
function receivedMoreThan(answer: number, count: number, gone: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const check = (): void => {
      if ((received.get(answer) ?? 0) <= count && !gone()) return;
      waiting.delete(answer);
      resolve();
    };
    waiting.set(answer, check);
    check();
  });
}

interface ChatBody {
  readonly messages?: readonly { readonly role: string; readonly content: string }[];
  readonly stream_options?: { readonly include_usage?: boolean };
}

async function readBody(req: IncomingMessage): Promise<ChatBody> {
  let text = "";
  req.setEncoding("utf8");
  for await (const chunk of req) text += chunk as string;
  return JSON.parse(text) as ChatBody;
}

async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method !== "POST" || req.url !== "/v1/chat/completions") {
    res.writeHead(404).end();
    return;
  }
  const body = await readBody(req);
  const messages = body.messages ?? [];
  const asked = parseStampedPrompt(messages.findLast((m) => m.role === "user")?.content ?? "");
  if (asked === undefined) {
    res.writeHead(400, { "content-type": "application/json" }).end('{"error":{"message":"not a stamped prompt"}}');
    return;
  }
  // A continued call (assistant prefill) resumes after the whole tokens it already holds.
  const last = messages.at(-1);
  const first = last?.role === "assistant" ? Math.floor(last.content.length / TOKEN_BYTES) : 0;
  const { answer } = asked;
  const created = Math.floor(Date.now() / 1000);
  const head = `data: {"id":"chatcmpl-${answer}","object":"chat.completion.chunk","created":${created},"model":"stamped","choices":[{"index":0,"delta":`;
  let closed = false;
  const gone = (): boolean => closed;
  res.on("close", () => {
    closed = true;
    waiting.get(answer)?.();
  });
  const drained = (): Promise<void> =>
    new Promise((resolve) => {
      const done = (): void => {
        res.off("drain", done);
        res.off("close", done);
        resolve();
      };
      res.on("drain", done);
      res.on("close", done);
    });
  const write = async (frame: string): Promise<void> => {
    if (!res.write(frame) && !closed) await drained();
  };
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  await write(`${head}{"role":"assistant","content":""},"finish_reason":null}]}\n\n`);
  await sleep(pace.firstTokenDelayMs);
  const startedAt = wallNow();
  const perWrite = pace.kind === "paced" ? (pace.tokensPerWrite ?? 1) : 1;
  let frames = ""; // the frames of the write under way
  for (let seq = first; seq < asked.tokens && !closed; seq++) {
    const firstOfWrite = seq - ((seq - first) % perWrite);
    const lastOfWrite = Math.min(firstOfWrite + perWrite - 1, asked.tokens - 1);
    if (pace.kind === "paced") {
      if (seq === firstOfWrite) {
        const due = startedAt + ((lastOfWrite - first) * 1000) / pace.tokensPerSecond - wallNow();
        if (due > 1) await sleep(due);
      }
    } else if (pace.kind === "closed" && seq - (received.get(answer) ?? 0) >= pace.window) {
      await receivedMoreThan(answer, seq - pace.window, gone);
      if (closed) break;
    }
    frames += `${head}{"content":"${stampToken(answer, seq, wallNow())}"},"finish_reason":null}]}\n\n`;
    if (seq === lastOfWrite) {
      await write(frames);
      frames = "";
    }
  }
  if (closed) return;
  let end = `${head}{},"finish_reason":"stop"}]}\n\n`;
  if (body.stream_options?.include_usage === true) {
    const completion = asked.tokens - first;
    end += `data: {"id":"chatcmpl-${answer}","object":"chat.completion.chunk","created":${created},"model":"stamped","choices":[],"usage":{"prompt_tokens":8,"completion_tokens":${completion},"total_tokens":${8 + completion}}}\n\n`;
  }
  res.end(`${end}data: [DONE]\n\n`);
}

const server = createServer((req, res) => {
  serve(req, res).catch((error: unknown) => {
    if (!res.headersSent) res.writeHead(500).end(String(error));
    else res.destroy();
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("the stamped model did not listen on TCP");
  send({ type: "ready", url: `http://127.0.0.1:${address.port}/v1` });
});
process.on("disconnect", () => process.exit(0));
