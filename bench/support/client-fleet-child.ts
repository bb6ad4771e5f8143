/**
 * The client fleet: a child process that plays every client of a phase over real HTTP on
 * loopback and parses real SSE with the product's own parser. Started by `client-fleet.ts`.
 */
import { Agent, request as httpRequest, type IncomingMessage } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { isTerminal, type Entry } from "../../src/core/entries.ts";
import { TextFold } from "../../src/core/fold.ts";
import { RESET_EVENT, SseParser } from "../../src/core/wire.ts";
import type { FleetPlan, FromFleet, ToFleet } from "./client-fleet.ts";
import { openFileLimit } from "./open-files.ts";
import { benchRequest, wallNow, type AnswerTrace, type LoadResult } from "./protocol.ts";

/** A client whose connection stays silent this long gives up: a stuck server ends the phase with problems, not a hang. */
const IDLE_TIMEOUT_MS = 60_000;

function send(message: FromFleet): void {
  process.send?.(message);
}

process.on("message", (message: ToFleet) => {
  if (message.type === "clock") send({ type: "clock", seq: message.seq, now: wallNow() });
  else if (message.type === "exit") process.exit(0);
  else
    runPlan(message.plan).then(
      (result) => send({ type: "result", result }),
      (error: unknown) => send({ type: "error", message: error instanceof Error ? (error.stack ?? error.message) : String(error) }),
    );
});
send({ type: "ready", fdLimit: openFileLimit() });

async function runPlan(plan: FleetPlan): Promise<LoadResult> {
  // No pooling limit: every client holds its own connection, as browsers on separate machines would.
  const agent = new Agent({ keepAlive: true, maxSockets: Infinity });
  const cpu = process.cpuUsage();
  const started = wallNow();
  const traces: AnswerTrace[] = [];
  await Promise.all(
    Array.from({ length: plan.concurrency }, async (_, client) => {
      const due = started + (client * plan.rampMs) / plan.concurrency - wallNow();
      if (due > 0) await sleep(due);
      const rounds = plan.rounds ?? 1;
      for (let round = 0; round < rounds; round++) traces.push(await oneAnswer(plan, agent, client * rounds + round));
    }),
  );
  const wallMs = wallNow() - started;
  const used = process.cpuUsage(cpu);
  agent.destroy();
  return { traces, wallMs, clientCpuMs: (used.user + used.system) / 1000 };
}

async function oneAnswer(plan: FleetPlan, agent: Agent, index: number): Promise<AnswerTrace> {
  const { content, seed, maxTokens } = benchRequest(plan.tag, index, plan.maxTokens);
  const startedAt = wallNow();
  let acceptedAt = startedAt;
  try {
    let path: string;
    if (plan.ask.kind === "post-then-get") {
      const body = JSON.stringify({ model: "sim", messages: [{ role: "user", content }], seed, max_tokens: maxTokens });
      const created = await postJson(agent, new URL("/v1/generations", plan.baseUrl), body);
      acceptedAt = wallNow();
      if (created.status !== 201) throw new Error(`POST answered ${created.status}: ${created.text.slice(0, 200)}`);
      path = `/v1/generations/${(JSON.parse(created.text) as { id: string }).id}/events`;
    } else {
      path = `${plan.ask.path}?${new URLSearchParams({ content, seed: String(seed), max_tokens: String(maxTokens) }).toString()}`;
    }
    const stream = await readStream(agent, new URL(path, plan.baseUrl));
    return { content, seed, startedAt, acceptedAt, ...stream };
  } catch (error) {
    const problem = error instanceof Error ? error.message : String(error);
    return {
      content,
      seed,
      startedAt,
      acceptedAt,
      connectedAt: startedAt,
      endedAt: wallNow(),
      received: [],
      text: "",
      terminal: undefined,
      problem,
    };
  }
}

function postJson(agent: Agent, url: URL, body: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      { method: "POST", agent, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) } },
      (res) => {
        res.setEncoding("utf8");
        let text = "";
        res.on("data", (chunk: string) => (text += chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
        res.on("error", reject);
      },
    );
    req.setTimeout(IDLE_TIMEOUT_MS, () => req.destroy(new Error(`no answer for ${IDLE_TIMEOUT_MS} ms`)));
    req.on("error", reject);
    req.end(body);
  });
}

type StreamPart = Omit<AnswerTrace, "content" | "seed" | "startedAt" | "acceptedAt">;

/** Reads one SSE response to its end, folding the text and timing every delta as it arrives. */
function readStream(agent: Agent, url: URL): Promise<StreamPart> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent, headers: { accept: "text/event-stream" } }, (res: IncomingMessage) => {
      const connectedAt = wallNow();
      if (res.statusCode !== 200) {
        res.resume();
        reject(new Error(`GET ${url.pathname} answered ${res.statusCode}`));
        return;
      }
      const fold = new TextFold();
      const received: number[] = [];
      let terminal: string | undefined;
      let problem: string | undefined;
      let now = connectedAt;
      const parser = new SseParser((message) => {
        if (message.event === RESET_EVENT) {
          problem ??= "reset";
          fold.reset();
          return;
        }
        const entry = JSON.parse(message.data) as Entry;
        try {
          fold.apply(entry); // throws on a gap or a repeat
        } catch (error) {
          problem ??= error instanceof Error ? error.message : String(error);
        }
        if (entry.type === "delta") received.push(now, fold.text.length);
        else if (entry.type === "rewind") problem ??= "rewind";
        if (isTerminal(entry)) {
          if (terminal !== undefined) problem ??= "second terminal entry";
          terminal ??= entry.type;
        }
      });
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        now = wallNow();
        parser.push(chunk);
      });
      res.on("end", () => resolve({ connectedAt, endedAt: wallNow(), received, text: fold.text, terminal, problem }));
      res.on("error", reject);
    });
    req.setTimeout(IDLE_TIMEOUT_MS, () => req.destroy(new Error(`no data for ${IDLE_TIMEOUT_MS} ms`)));
    req.on("error", reject);
    req.end();
  });
}
