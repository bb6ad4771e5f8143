import type { ServerResponse } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { answerTokens, answerUsage, type AnswerContext, type WireDialect } from "./dialect.ts";
import type { FaultPlan } from "./faults.ts";

/** One accepted answer on its way out. */
export interface AnswerRun {
  readonly res: ServerResponse;
  readonly dialect: WireDialect;
  readonly answer: AnswerContext;
  /** Stream faults only: `error` and `rate-limit` are answered before an answer runs. */
  readonly plan: FaultPlan;
  readonly tokensPerSecond: number;
  /** Aborts when the connection closes. */
  readonly signal: AbortSignal;
  /** Headers every response of this request carries (its request id). */
  readonly headers: Readonly<Record<string, string>>;
  /** Called just before the server destroys the socket itself (`cut`), so it is not counted as the client's doing. */
  readonly onCut: () => void;
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
 * Sends the simulator's answer after the request's prefix, paced at `tokensPerSecond`, as an SSE
 * stream or one JSON body, and injects the plan's stream fault: `slow-first-token` holds the body
 * back after the headers, `stall` goes silent after N tokens until the client leaves, `cut`
 * destroys the socket after N tokens. Neither of the last two ever sends the end-of-stream marker.
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
  res.write(dialect.streamStart(answer));
  const tokens = answerTokens(answer.request);
  const fault = await paceTokens(run, tokens, (text) => res.write(dialect.streamToken(answer, text)));
  if (fault) return fault;
  res.end(dialect.streamFinish(answer, answerUsage(answer.request, tokens.length)));
  return "completed";
}

async function writeWhole(run: AnswerRun): Promise<AnswerOutcome> {
  const { res, dialect, answer } = run;
  await firstTokenDelay(run);
  const tokens = answerTokens(answer.request);
  let text = "";
  const fault = await paceTokens(run, tokens, (token) => (text += token));
  if (fault) return fault;
  const body = JSON.stringify(dialect.complete(answer, text, answerUsage(answer.request, tokens.length)));
  res.writeHead(200, { "content-type": "application/json", ...run.headers });
  res.end(body);
  return "completed";
}

async function firstTokenDelay(run: AnswerRun): Promise<void> {
  if (run.plan.kind === "slow-first-token") await sleep(run.plan.firstTokenDelayMs, undefined, { signal: run.signal });
}

/** Emits each token on an absolute schedule; returns the fault's outcome if one struck. */
async function paceTokens(run: AnswerRun, tokens: readonly string[], emit: (text: string) => void): Promise<AnswerOutcome | undefined> {
  const { plan, signal } = run;
  const faultAt = plan.kind === "stall" || plan.kind === "cut" ? Math.min(plan.afterTokens, tokens.length) : -1;
  const intervalMs = 1000 / run.tokensPerSecond;
  const started = performance.now();
  for (let i = 0; i <= tokens.length; i++) {
    if (i === faultAt) return plan.kind === "stall" ? stall(signal) : cut(run);
    if (i === tokens.length) break;
    // Absolute schedule: pacing does not drift with timer lateness.
    const due = started + (i + 1) * intervalMs - performance.now();
    if (due > 0) await sleep(due, undefined, { signal });
    else signal.throwIfAborted();
    emit(tokens[i] ?? "");
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
