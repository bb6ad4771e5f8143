/**
 * The readers of `bench/peers.ts`: a child process that starts every answer of a phase and follows
 * it over SSE on loopback, one connection each, checks that each answer's stamped tokens arrive
 * exactly once and in order, and times each one from the model's write to its own parse.
 * Started by `peer-readers.ts`.
 */
import { Agent, request as httpRequest, type ClientRequest, type IncomingMessage } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { SseParser, type SseMessage } from "../../src/core/wire.ts";
import type { FromReaders, ReaderPlan, ReaderResult, ToReaders } from "./peer-readers.ts";
import { wallNow } from "./protocol.ts";
import { TOKEN_BYTES, readToken, stampedPrompt } from "./stamped-token.ts";
import { percentiles } from "./token-latency.ts";

const ACK_EVERY_MS = 2;
const TERMINAL = new Set(["completed", "failed", "cancelled"]);

function send(message: FromReaders): void {
  process.send?.(message);
}

/** One answer as its reader follows it. */
class Follow {
  expectedSeq = 0;
  carry = "";
  lastOffset = 0;
  ended = false;
  problem: string | undefined;
  requestedAt = Number.NaN;
  /** When the follow request (the GET) went out: tokens written before it are catch-up. */
  followedAt = Number.NaN;
  firstAt = Number.NaN;
  lastAt = Number.NaN;

  constructor(readonly index: number) {}

  fail(problem: string): void {
    this.problem ??= `answer ${this.index}: ${problem}`;
  }
}

/** What a phase collects as it runs; analysed on `report`. */
class Phase {
  readonly follows: Follow[];
  readonly latencies: number[] = [];
  /** Lifeline: emitted → appended, and appended → received, per token. */
  readonly toLog: number[] = [];
  readonly fromLog: number[] = [];
  readonly receipts: number[] = [];
  readonly requests = new Set<ClientRequest>();
  readonly acks = new Map<number, number>();
  catchUp = 0;
  retries = 0;
  /** The deadline passed: the readers still open were cut. */
  cut = false;
  startedAt = wallNow();
  #ackTimer: NodeJS.Timeout | undefined;

  constructor(readonly plan: ReaderPlan) {
    this.follows = Array.from({ length: plan.answers }, (_, i) => new Follow(plan.firstAnswer + i));
  }

  /** The text of a delta (Lifeline) or a token frame (resumable-stream) arrived at `now`. */
  text(follow: Follow, text: string, now: number, appendedAt?: number): void {
    follow.carry += text;
    let at = 0;
    for (; follow.carry.length - at >= TOKEN_BYTES; at += TOKEN_BYTES) {
      const token = readToken(follow.carry, at);
      if (token === undefined) {
        follow.fail(`not a stamped token: ${JSON.stringify(follow.carry.slice(at, at + TOKEN_BYTES))}`);
        continue;
      }
      if (token.answer !== follow.index) follow.fail(`a token of answer ${token.answer}`);
      if (token.seq !== follow.expectedSeq)
        follow.fail(
          `${token.seq < follow.expectedSeq ? "repeat or reorder" : "gap"}: token ${token.seq} where ${follow.expectedSeq} was due`,
        );
      follow.expectedSeq = Math.max(follow.expectedSeq, token.seq + 1);
      const emitted = token.emittedAt - this.plan.clockCorrectionMs;
      if (emitted < follow.followedAt) this.catchUp++;
      else {
        this.latencies.push(now - emitted);
        if (appendedAt !== undefined) {
          this.toLog.push(appendedAt - emitted);
          this.fromLog.push(now - appendedAt);
        }
      }
      this.receipts.push(now);
    }
    follow.carry = follow.carry.slice(at);
    if (Number.isNaN(follow.firstAt)) follow.firstAt = now;
    follow.lastAt = now;
    if (this.plan.acks) this.#ack(follow);
  }

  #ack(follow: Follow): void {
    this.acks.set(follow.index, follow.expectedSeq);
    if (this.#ackTimer !== undefined) return;
    this.#ackTimer = setTimeout(() => {
      this.#ackTimer = undefined;
      const acks = [...this.acks].flat();
      this.acks.clear();
      send({ type: "acks", acks });
    }, ACK_EVERY_MS);
  }

  /** A Lifeline SSE message. */
  entry(follow: Follow, message: SseMessage, now: number): void {
    if (message.event === "reset") return follow.fail("reset");
    const entry = JSON.parse(message.data) as {
      offset: number;
      type: string;
      text?: string;
      at?: string;
      error?: { code?: string; message?: string };
    };
    if (entry.offset !== follow.lastOffset + 1) follow.fail(`entry ${entry.offset} after ${follow.lastOffset}`);
    follow.lastOffset = Math.max(follow.lastOffset, entry.offset);
    if (entry.type === "delta") this.text(follow, entry.text ?? "", now, entry.at === undefined ? undefined : Date.parse(entry.at));
    else if (entry.type === "retrying") this.retries++;
    else if (entry.type === "rewind") follow.fail("rewind");
    else if (TERMINAL.has(entry.type)) {
      // A failure says why (the error's code and words), so a run's report tells a starved model from a bug.
      if (entry.type !== "completed") follow.fail(entry.error ? `${entry.type} (${entry.error.code}: ${entry.error.message})` : entry.type);
      follow.ended = true;
    }
  }

  /** A frame of the resumable-stream producer. */
  frame(follow: Follow, message: SseMessage, now: number): void {
    if (message.event === "end") follow.ended = true;
    else this.text(follow, message.data, now);
  }

  result(): ReaderResult {
    let exact = 0;
    const brokenSamples: string[] = [];
    const incompleteSamples: string[] = [];
    let incomplete = 0;
    let broken = 0;
    const tokens = this.plan.tokensPerAnswer;
    for (const f of this.follows) {
      if (f.problem === undefined && f.ended && f.expectedSeq === tokens && f.carry === "") exact++;
      else if (f.problem === undefined) {
        incomplete++;
        if (incompleteSamples.length < 3)
          incompleteSamples.push(
            `answer ${f.index}: ${f.expectedSeq} of ${tokens} tokens${f.ended ? "" : this.cut ? ", cut at the deadline" : ", no end"}`,
          );
      } else {
        broken++;
        if (brokenSamples.length < 20) brokenSamples.push(f.problem);
      }
    }
    const problemSamples = [...brokenSamples, ...incompleteSamples];
    const firstAt = this.receipts.reduce((a, b) => Math.min(a, b), Infinity);
    const lastAt = this.receipts.reduce((a, b) => Math.max(a, b), -Infinity);
    const wallMs = (Number.isFinite(lastAt) ? lastAt : wallNow()) - this.startedAt;
    const plateau = this.#plateau();
    const perSecond: number[] = [];
    for (const at of this.receipts) {
      const second = Math.floor((at - this.startedAt) / 1000);
      perSecond[second] = (perSecond[second] ?? 0) + 1;
    }
    return {
      answers: this.follows.length,
      exact,
      incomplete,
      broken,
      problemSamples,
      retries: this.retries,
      tokens: this.receipts.length,
      catchUpTokens: this.catchUp,
      latencyMs: percentiles(this.latencies),
      ...(this.toLog.length > 0 ? { latencySplitMs: { toLog: percentiles(this.toLog), fromLog: percentiles(this.fromLog) } } : {}),
      firstTokenMs: percentiles(this.follows.filter((f) => !Number.isNaN(f.firstAt)).map((f) => f.firstAt - f.requestedAt)),
      postMs: percentiles(this.follows.filter((f) => !Number.isNaN(f.followedAt)).map((f) => f.followedAt - f.requestedAt)),
      followToFirstMs: percentiles(this.follows.filter((f) => !Number.isNaN(f.firstAt)).map((f) => f.firstAt - f.followedAt)),
      wallMs,
      overallTokensPerSecond: this.receipts.length / (wallMs / 1000),
      spanTokensPerSecond: this.receipts.length / ((lastAt - firstAt) / 1000),
      ...plateau,
      perSecond: Array.from(perSecond, (n) => n ?? 0),
    };
  }

  /** The stretch where at least 90 % of the most answers streaming at once were streaming. */
  #plateau(): { plateauTokensPerSecond: number; plateauMs: number; peakStreaming: number } {
    const changes = this.follows
      .filter((f) => !Number.isNaN(f.firstAt))
      .flatMap((f) => [
        { at: f.firstAt, change: 1 },
        { at: f.lastAt, change: -1 },
      ])
      .sort((a, b) => a.at - b.at || b.change - a.change);
    let streaming = 0;
    let peak = 0;
    for (const c of changes) peak = Math.max(peak, (streaming += c.change));
    const threshold = Math.ceil(peak * 0.9);
    let from = Number.NaN;
    let to = Number.NaN;
    streaming = 0;
    for (const c of changes) {
      const before = streaming;
      streaming += c.change;
      if (before < threshold && streaming >= threshold && Number.isNaN(from)) from = c.at;
      if (before >= threshold && streaming < threshold) to = c.at;
    }
    const plateauMs = to - from;
    if (!(plateauMs >= 1000)) {
      const lastAt = this.receipts.reduce((a, b) => Math.max(a, b), -Infinity);
      return {
        plateauTokensPerSecond: this.receipts.length / ((lastAt - this.startedAt) / 1000),
        plateauMs: Number.NaN,
        peakStreaming: peak,
      };
    }
    const inside = this.receipts.reduce((n, at) => (at >= from && at <= to ? n + 1 : n), 0);
    return { plateauTokensPerSecond: inside / (plateauMs / 1000), plateauMs, peakStreaming: peak };
  }
}

let current: Phase | undefined;

process.on("message", (message: ToReaders) => {
  if (message.type === "clock") send({ type: "clock", seq: message.seq, now: wallNow() });
  else if (message.type === "exit") process.exit(0);
  else if (message.type === "report") {
    if (current) send({ type: "result", result: current.result() });
    else send({ type: "error", message: "no phase ran" });
  } else
    runPhase((current = new Phase(message.plan))).then(
      () => send({ type: "finished" }),
      (error: unknown) => send({ type: "error", message: error instanceof Error ? (error.stack ?? error.message) : String(error) }),
    );
});
send({ type: "ready" });

async function runPhase(phase: Phase): Promise<void> {
  const { plan } = phase;
  // No pooling limit: every reader holds its own connection, as browsers on separate machines would.
  const agent = new Agent({ keepAlive: true, maxSockets: Infinity });
  const deadline = setTimeout(() => {
    phase.cut = true;
    for (const req of phase.requests) req.destroy(new Error("cut at the phase's deadline"));
  }, plan.deadlineMs);
  phase.startedAt = wallNow();
  await Promise.all(
    phase.follows.map(async (follow) => {
      const due = phase.startedAt + ((follow.index - plan.firstAnswer) * plan.rampMs) / plan.answers - wallNow();
      if (due > 0) await sleep(due);
      if (wallNow() - phase.startedAt > plan.deadlineMs) return;
      try {
        await followAnswer(phase, follow, agent);
      } catch (error) {
        // An answer cut at the deadline is incomplete, not broken: what it got is still checked.
        if (!follow.ended && !phase.cut) follow.fail(error instanceof Error ? error.message : String(error));
      }
    }),
  );
  clearTimeout(deadline);
  agent.destroy();
}

async function followAnswer(phase: Phase, follow: Follow, agent: Agent): Promise<void> {
  const { plan } = phase;
  const content = stampedPrompt(plan.tag, follow.index, plan.tokensPerAnswer);
  const lifeline = plan.api === "lifeline";
  const body = lifeline
    ? JSON.stringify({ model: "stamped", messages: [{ role: "user", content }], max_tokens: plan.tokensPerAnswer })
    : JSON.stringify({ content, max_tokens: plan.tokensPerAnswer });
  const postUrl = new URL(lifeline ? "/v1/generations" : `/answers/${plan.tag}-${follow.index}`, plan.baseUrl);
  follow.requestedAt = wallNow();
  const created = await postJson(phase, agent, postUrl, body).catch((error: unknown) => {
    throw new Error(`POST: ${error instanceof Error ? error.message : String(error)}`);
  });
  if (created.status !== 201) throw new Error(`POST answered ${created.status}: ${created.text.slice(0, 200)}`);
  const followUrl = lifeline ? new URL(`/v1/generations/${(JSON.parse(created.text) as { id: string }).id}/events`, plan.baseUrl) : postUrl;
  const onMessage = lifeline
    ? (m: SseMessage, now: number) => phase.entry(follow, m, now)
    : (m: SseMessage, now: number) => phase.frame(follow, m, now);
  await readSse(phase, agent, followUrl, follow, onMessage).catch((error: unknown) => {
    throw new Error(`GET: ${error instanceof Error ? error.message : String(error)}`);
  });
}

function postJson(phase: Phase, agent: Agent, url: URL, body: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      { method: "POST", agent, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) } },
      (res) => {
        res.setEncoding("utf8");
        let text = "";
        res.on("data", (chunk: string) => (text += chunk));
        res.on("end", () => {
          phase.requests.delete(req);
          resolve({ status: res.statusCode ?? 0, text });
        });
        res.on("error", reject);
      },
    );
    phase.requests.add(req);
    req.on("error", reject);
    req.end(body);
  });
}

/** Reads one SSE response to its end, handing every message over with the moment its chunk arrived. */
function readSse(
  phase: Phase,
  agent: Agent,
  url: URL,
  follow: Follow,
  onMessage: (message: SseMessage, now: number) => void,
): Promise<void> {
  return new Promise((resolve, reject) => {
    follow.followedAt = wallNow();
    const req = httpRequest(url, { agent, headers: { accept: "text/event-stream" } }, (res: IncomingMessage) => {
      if (res.statusCode !== 200) {
        res.resume();
        reject(new Error(`GET ${url.pathname} answered ${res.statusCode}`));
        return;
      }
      let now = wallNow();
      const parser = new SseParser((message) => onMessage(message, now));
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        now = wallNow();
        parser.push(chunk);
      });
      res.on("end", () => {
        phase.requests.delete(req);
        resolve();
      });
      res.on("error", reject);
    });
    phase.requests.add(req);
    req.on("error", reject);
    req.end();
  });
}
