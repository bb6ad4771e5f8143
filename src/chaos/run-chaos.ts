import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { WebSocket } from "ws";
import { createClient, type AnswerFollow, type LifelineClient, type TransportName } from "../client/index.ts";
import type { GenerationRequest } from "../core/entries.ts";
import { prng } from "../llm/sim/prng.ts";
import { simTokens } from "../llm/sim/sim-text.ts";
import { startChaosProxy, type ChaosProxy } from "./chaos-proxy.ts";
import { startLifeline, type LifelineProcess } from "./lifeline-process.ts";

export interface ChaosOptions {
  readonly answers: number;
  readonly workers: number;
  /** A random worker is SIGKILLed (and a new one started) this often. */
  readonly killEveryMs: number;
  readonly tokens: number;
  readonly tokensPerSecond: number;
  readonly seed: number;
  readonly transports: readonly TransportName[];
  /** Kill the gateway once, mid-run, and start it again on the same port. */
  readonly killGateway: boolean;
  /** Give up (and fail) after this long. */
  readonly deadlineMs: number;
  /** Keep the data directory, to replay the answers afterwards. */
  readonly keep: boolean;
}

export interface ChaosReport {
  readonly seed: number;
  readonly answers: number;
  readonly exact: number;
  readonly wrong: readonly { readonly id: string; readonly why: string }[];
  readonly workersKilled: number;
  readonly gatewayKills: number;
  readonly connectionsCut: number;
  readonly takeovers: number;
  readonly clientResumes: number;
  readonly resets: number;
  readonly transports: Readonly<Record<string, number>>;
  readonly durationMs: number;
  /** Where the data stayed (with `keep`), and one generation to replay. */
  readonly dataDir?: string;
  readonly example?: string;
}

/** A lease short enough that killed workers' answers are taken over within the run. */
const LEASE_MS = 1500;

/**
 * Runs a small deployment (a gateway and `workers` workers on a temporary sqlite engine, as
 * separate processes), starts answers, follows each through a proxy that cuts connections, and
 * SIGKILLs workers (and the gateway once) while they stream. Then checks the promise: every
 * answer's final text equals the uninterrupted sim answer, every offset reached the follower once.
 */
export async function runChaos(options: ChaosOptions, progress: (line: string) => void = () => undefined): Promise<ChaosReport> {
  const began = Date.now();
  const random = prng(options.seed);
  const dataDir = mkdtempSync(join(tmpdir(), "lifeline-chaos-"));
  const env = {
    LIFELINE_ENGINE: "sqlite",
    LIFELINE_DATA_DIR: dataDir,
    LIFELINE_LEASE_MS: String(LEASE_MS),
    LIFELINE_HEARTBEAT_MS: "1000",
    LIFELINE_SIM_TOKENS_PER_SECOND: String(options.tokensPerSecond),
    LIFELINE_LOG_LEVEL: "error",
    // Spread the answers over the workers, so that every kill hits answers mid-stream.
    LIFELINE_WORKER_CONCURRENCY: String(Math.max(1, Math.ceil(options.answers / options.workers))),
  };
  const processes = new Set<LifelineProcess>();
  const launch = async (role: "gateway" | "worker", extra: Record<string, string> = {}): Promise<LifelineProcess> => {
    const child = await startLifeline(role, { ...env, ...extra });
    processes.add(child);
    return child;
  };
  let proxy: ChaosProxy | undefined;
  const clients: LifelineClient[] = [];
  try {
    let gateway = await launch("gateway");
    const port = new URL(gateway.url).port;
    const workers = await Promise.all(Array.from({ length: options.workers }, () => launch("worker")));
    proxy = await startChaosProxy(Number(port), { minMs: 300, maxMs: 3000, seed: options.seed, jitterMs: 30 });
    progress(`a gateway and ${options.workers} workers on sqlite in ${dataDir}; clients go through a proxy that cuts connections`);

    const reconnect = { initialMs: 50, maxMs: 1000 };
    const direct = createClient({ baseUrl: gateway.url, reconnect });
    const viaProxy = new Map(
      options.transports.map((t) => [
        t,
        createClient({ baseUrl: proxy!.url, WebSocket, transports: [t], reconnect, heartbeatTimeoutMs: 5000 }),
      ]),
    );
    clients.push(direct, ...viaProxy.values());

    const asks = Array.from({ length: options.answers }, (_, i) => {
      const request: GenerationRequest = {
        model: "sim",
        messages: [{ role: "user", content: `chaos ${options.seed} answer ${i}` }],
        max_tokens: options.tokens,
      };
      return { request, expected: simTokens(request).join(""), transport: options.transports[i % options.transports.length]! };
    });
    const started = await Promise.all(asks.map(async (ask) => ({ ...ask, id: (await direct.start(ask.request)).id })));
    progress(`${started.length} answers started`);

    const follows = started.map((answer) => followOne(viaProxy.get(answer.transport)!.follow(answer.id)));
    const allDone = Promise.all(follows.map((f) => f.done));

    // The chaos: a random worker killed and replaced every killEveryMs; the gateway once, early on.
    let workersKilled = 0;
    let gatewayKills = 0;
    let finished = false;
    const over = (): void => {
      finished = true;
    };
    allDone.then(over, over); // a follow that fails is reported below, through allDone
    const deadline = began + options.deadlineMs;
    while (!finished && Date.now() < deadline) {
      await Promise.race([sleep(options.killEveryMs), allDone.catch(() => undefined)]);
      if (finished) break;
      const victim = workers.splice(Math.floor(random() * workers.length), 1)[0];
      if (victim) {
        await victim.kill();
        processes.delete(victim);
        workersKilled += 1;
        workers.push(await launch("worker"));
        progress(`killed a worker (SIGKILL), started another (${workersKilled} so far)`);
      }
      if (options.killGateway && gatewayKills === 0 && workersKilled === 1) {
        await gateway.kill();
        processes.delete(gateway);
        gatewayKills += 1;
        gateway = await restartOnPort(launch, port);
        progress("killed the gateway (SIGKILL) and started it again on the same port");
      }
    }
    if (!finished) throw new Error(`the answers did not all end within ${options.deadlineMs} ms`);
    const results = await allDone;

    const wrong: { id: string; why: string }[] = [];
    let takeovers = 0;
    let clientResumes = 0;
    let resets = 0;
    const transports: Record<string, number> = {};
    for (const [i, result] of results.entries()) {
      const answer = started[i]!;
      const why =
        result.text !== answer.expected
          ? "the text differs from the uninterrupted answer"
          : result.status !== "completed"
            ? `it ended ${result.status}`
            : result.problem;
      if (why) wrong.push({ id: answer.id, why });
      clientResumes += result.resumes;
      resets += result.resets;
      transports[answer.transport] = (transports[answer.transport] ?? 0) + 1;
      const timeline = (await (await fetch(`${gateway.url}/v1/generations/${answer.id}/timeline`)).json()) as { takeovers?: number };
      takeovers += timeline.takeovers ?? 0;
    }
    return {
      seed: options.seed,
      answers: results.length,
      exact: results.length - wrong.length,
      wrong,
      workersKilled,
      gatewayKills,
      connectionsCut: proxy.cuts,
      takeovers,
      clientResumes,
      resets,
      transports,
      durationMs: Date.now() - began,
      ...(options.keep ? { dataDir, ...(started[0] ? { example: started[0].id } : {}) } : {}),
    };
  } finally {
    try {
      for (const client of clients) client.close();
      await proxy?.close();
      await Promise.all([...processes].map((p) => p.kill()));
    } finally {
      if (!options.keep) rmSync(dataDir, { recursive: true, force: true });
    }
  }
}

interface FollowResult {
  readonly text: string;
  readonly status: string;
  readonly resumes: number;
  readonly resets: number;
  /** Set when an offset reached the application twice or out of order. */
  readonly problem: string | undefined;
}

/** Follows one answer the way an application does, and checks what reached it. */
function followOne(follow: AnswerFollow): { done: Promise<FollowResult> } {
  let expected = 1;
  let problem: string | undefined;
  let resumes = 0;
  let resets = 0;
  const done = (async (): Promise<FollowResult> => {
    for await (const event of follow) {
      if (event.type === "reset") {
        resets += 1;
        expected = 1;
      } else if (event.type === "state" && event.state === "resumed") {
        resumes += 1;
      } else if (event.type === "entry") {
        if (event.entry.offset !== expected) problem ??= `offset ${event.entry.offset} reached the application where ${expected} was due`;
        expected = event.entry.offset + 1;
      }
    }
    const final = await follow.done;
    return { text: final.text, status: final.status, resumes, resets, problem };
  })();
  return { done };
}

/** A SIGKILLed process's port may linger for a moment. */
async function restartOnPort(
  launch: (role: "gateway", extra: Record<string, string>) => Promise<LifelineProcess>,
  port: string,
): Promise<LifelineProcess> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await launch("gateway", { LIFELINE_PORT: port });
    } catch (error) {
      if (attempt >= 10) throw error;
      await sleep(200);
    }
  }
}

/** The report for a terminal. */
export function renderChaosReport(r: ChaosReport): string {
  const lines = [
    `Lifeline chaos, seed ${r.seed}: ${r.answers} answers in ${(r.durationMs / 1000).toFixed(1)} s`,
    `  injected: ${r.workersKilled} workers SIGKILLed and replaced, the gateway SIGKILLed ${r.gatewayKills} time(s), ${r.connectionsCut} client connections cut`,
    `  recovered: ${r.takeovers} takeovers (an answer continued by another worker), ${r.clientResumes} client resumes, ${r.resets} resets`,
    `  transports: ${Object.entries(r.transports)
      .map(([t, n]) => `${t} ${n}`)
      .join(", ")}`,
    `  ${r.exact} of ${r.answers} answers exact: the same text as an uninterrupted run, every offset once and in order`,
  ];
  for (const w of r.wrong) lines.push(`  WRONG ${w.id}: ${w.why}`);
  if (r.dataDir)
    lines.push(`  data kept in ${r.dataDir}; see one answer's story with: lifeline replay ${r.example ?? "<id>"} --data-dir ${r.dataDir}`);
  return `${lines.join("\n")}\n`;
}
