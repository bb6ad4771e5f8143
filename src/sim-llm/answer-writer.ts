import type { ServerResponse } from "node:http";
import { once } from "node:events";
import { setImmediate, setTimeout as sleep } from "node:timers/promises";
import { answerTokens, answerUsage, type AnswerContext, type WireDialect } from "./dialect.ts";
import type { FaultPlan } from "./faults.ts";
import type { TokenPace } from "./options.ts";

/** One accepted answer on its way out. */
export interface AnswerRun {
  readonly res: ServerResponse;
  readonly dialect: WireDialect;
  readonly answer: AnswerContext;
  /** Stream faults only: `error` and `rate-limit` are answered before an answer runs. */
  readonly plan: FaultPlan;
  readonly tokensPerSecond: TokenPace;
  /** Aborts when the connection closes. */
  readonly signal: AbortSignal;
  /** Headers every response of this request carries (its request id). */
  readonly headers: Readonly<Record<string, string>>;
  /** Called just before the server destroys the socket itself (`cut`), so it is not counted as the client's doing. */
  readonly onCut: () => void;
  /** Called with the number of content tokens handed to the socket (or, `stream: false`, written in the body). */
  readonly onSent: (tokens: number) => void;
}

/** How an answer ended: sent whole, stalled until the client went, cut by us, or abandoned by the client. */
export type AnswerOutcome = "completed" | "stalled" | "cut" | "aborted";

const SSE_HEADERS = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache",
  connection: "keep-alive",
  "x-accel-buffering": "no",
} as const;

/**
 * Sends the simulator's answer after the request's prefix, paced at `tokensPerSecond` (at `max`, as
 * fast as the client reads; never faster than its socket takes it), as an SSE stream or one JSON
 * body, and injects the plan's stream fault: `slow-first-token` holds the body back after the
 * headers, `stall` goes silent after N tokens until the client leaves, `cut` destroys the socket
 * after N tokens. Neither of the last two ever sends the end-of-stream marker.
 */
export async function writeAnswer(run: AnswerRun): Promise<AnswerOutcome> {
  try {
    return run.answer.request.stream ? await writeStream(run) : await writeWhole(run);
  } catch (error) {
    if (run.signal.aborted) return "aborted";
    throw error;
  }
}

async function writeStream(run: AnswerRun): Promise<AnswerOutcome> {
  const { res, dialect, answer } = run;
  res.writeHead(200, { ...SSE_HEADERS, ...run.headers });
  res.flushHeaders();
  await firstTokenDelay(run);
  const tokens = answerTokens(answer.request);
  const out = new SocketSink(run);
  out.add(dialect.streamStart(answer), 0);
  const fault = await sendTokens(run, tokens, out, (text) => dialect.streamToken(answer, text));
  if (fault) return fault;
  res.end(out.take() + dialect.streamFinish(answer, answerUsage(answer.request, tokens.length)));
  return "completed";
}

async function writeWhole(run: AnswerRun): Promise<AnswerOutcome> {
  const { res, dialect, answer } = run;
  await firstTokenDelay(run);
  const tokens = answerTokens(answer.request);
  const out = new TextSink();
  const fault = await sendTokens(run, tokens, out, (text) => text);
  if (fault) return fault;
  const body = JSON.stringify(dialect.complete(answer, out.text, answerUsage(answer.request, tokens.length)));
  res.writeHead(200, { "content-type": "application/json", ...run.headers });
  res.end(body);
  run.onSent(tokens.length);
  return "completed";
}

async function firstTokenDelay(run: AnswerRun): Promise<void> {
  if (run.plan.kind === "slow-first-token") await sleep(run.plan.firstTokenDelayMs, undefined, { signal: run.signal });
}

/** Where the tokens of an answer go: text gathered for one body, or frames written to the socket. */
interface TokenSink {
  /** Queues `text` (carrying `tokens` content tokens) to go out on the next `send()`. */
  add(text: string, tokens: number): void;
  /** Hands what was queued over; resolves once the client can take more. */
  send(): Promise<void>;
}

/** A stream's frames, written a turn's worth at a time, with the socket's backpressure honoured. */
class SocketSink implements TokenSink {
  readonly #run: AnswerRun;
  #queued = "";
  #tokens = 0;

  constructor(run: AnswerRun) {
    this.#run = run;
  }

  add(text: string, tokens: number): void {
    this.#queued += text;
    this.#tokens += tokens;
  }

  /** What is queued, taken out to be written by the caller (with the end of the response). */
  take(): string {
    const text = this.#queued;
    this.#run.onSent(this.#tokens);
    this.#queued = "";
    this.#tokens = 0;
    return text;
  }

  async send(): Promise<void> {
    if (this.#queued === "") return;
    const { res, signal } = this.#run;
    // false: the socket holds a high-water mark or more; write again only once it drained.
    if (!res.write(this.take())) await once(res, "drain", { signal });
  }
}

/** A `stream: false` answer's text: nothing leaves before the whole body. */
class TextSink implements TokenSink {
  text = "";

  add(text: string): void {
    this.text += text;
  }

  send(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * Content tokens queued between two turns of the event loop at most: a fast answer yields now
 * and then, so that many answers interleave and the server keeps answering while one streams.
 */
const TOKENS_PER_TURN = 32;

/**
 * Queues each token when it is due and sends what is queued before every wait: paced, tokens are
 * due on an absolute schedule (pacing does not drift with timer lateness); at `max`, at once, as
 * fast as the client reads. Returns the fault's outcome if one struck.
 */
async function sendTokens(
  run: AnswerRun,
  tokens: readonly string[],
  out: TokenSink,
  frame: (text: string) => string,
): Promise<AnswerOutcome | undefined> {
  const { plan, signal } = run;
  const faultAt = plan.kind === "stall" || plan.kind === "cut" ? Math.min(plan.afterTokens, tokens.length) : -1;
  const intervalMs = run.tokensPerSecond === "max" ? 0 : 1000 / run.tokensPerSecond;
  const started = performance.now();
  let queued = 0;
  for (let i = 0; i <= tokens.length; i++) {
    if (i === faultAt) {
      await out.send();
      return plan.kind === "stall" ? stall(signal) : cut(run);
    }
    if (i === tokens.length) break;
    const due = intervalMs === 0 ? 0 : started + (i + 1) * intervalMs - performance.now();
    if (due > 0 || queued >= TOKENS_PER_TURN) {
      await out.send();
      if (due > 0) await sleep(due, undefined, { signal });
      else await setImmediate(undefined, { signal });
      queued = 0;
    } else signal.throwIfAborted();
    out.add(frame(tokens[i] ?? ""), 1);
    queued += 1;
  }
  return undefined;
}

/** Connection open, not another byte, until the client goes (or the server closes). */
async function stall(signal: AbortSignal): Promise<AnswerOutcome> {
  if (!signal.aborted) await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
  return "stalled";
}

/** Flushes what was written, then closes the socket with the response unfinished. */
async function cut(run: AnswerRun): Promise<AnswerOutcome> {
  const socket = run.res.socket;
  run.onCut();
  if (socket && !socket.destroyed) {
    await new Promise<void>((resolve) => {
      socket.once("close", () => resolve());
      socket.end(() => socket.destroy());
    });
  }
  return "cut";
}
