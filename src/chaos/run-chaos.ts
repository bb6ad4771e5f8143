import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { WebSocket } from "ws";
import { createClient, type LifelineClient, type TransportName } from "../client/index.ts";
import type { GenerationRequest } from "../core/entries.ts";
import { simTokens } from "../llm/sim/sim-text.ts";
import type { Timeline } from "../projections/timeline.ts";
import { faultMidAnswer, hitInFlight, isRunning, killWorkerMidAnswer, type AimedFault } from "./aimed-fault.ts";
import { startChaosProxy, type ChaosProxy } from "./chaos-proxy.ts";
import { checkFollow } from "./follow-check.ts";
import { readTimeline } from "./in-flight.ts";
import { startLifeline, type LifelineProcess } from "./lifeline-process.ts";

export interface ChaosOptions {
  readonly answers: number;
  readonly workers: number;
  /** This often, the worker that holds an answer mid-stream is SIGKILLed (and a new one started). */
  readonly killEveryMs: number;
  readonly tokens: number;
  readonly tokensPerSecond: number;
  readonly seed: number;
  readonly transports: readonly TransportName[];
  /** Kill the gateway once, mid-run while an answer streams, and start it again on the same port. */
  readonly killGateway: boolean;
  /** Give up (and fail) after this long. */
  readonly deadlineMs: number;
  /** Keep the data directory, to replay the answers afterwards. */
  readonly keep: boolean;
}

/** One fault of a run: what was killed, the answer in flight it was aimed at, and whether it hit it in flight. */
export interface ChaosFault {
  /** `worker` or `gateway`. */
  readonly kind: string;
  /** The worker's name (its `started` entries carry it), or `gateway`. */
  readonly target: string;
  readonly answer: string;
  /** The answer's last entry when the fault was aimed. */
  readonly atEntry: number;
  /** From the log once the answer ended: a killed worker's attempt was taken over; the gateway died before the answer ended. */
  readonly inFlight: boolean;
}

export interface ChaosReport {
  readonly seed: number;
  readonly answers: number;
  readonly exact: number;
  readonly wrong: readonly { readonly id: string; readonly why: string }[];
  readonly workersKilled: number;
  readonly gatewayKills: number;
  /** Faults (worker and gateway kills) that hit an answer in flight. */
  readonly faultsInFlight: number;
  readonly faults: readonly ChaosFault[];
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
 * SIGKILLs workers (and the gateway once) while they stream, each kill aimed at a worker that the
 * log shows mid-answer. Then checks the promise: every answer's final text equals the
 * uninterrupted sim answer, every offset reached the application once; and that every fault hit
 * an answer in flight.
 */
export async function runChaos(options: ChaosOptions, progress: (line: string) => void = () => undefined): Promise<ChaosReport> {
  const began = Date.now();
  const dataDir = mkdtempSync(join(tmpdir(), "lifeline-chaos-"));
  const env = {
    LIFELINE_ENGINE: "sqlite",
    LIFELINE_DATA_DIR: dataDir,
    LIFELINE_LEASE_MS: String(LEASE_MS),
    LIFELINE_HEARTBEAT_MS: "1000",
    LIFELINE_SIM_TOKENS_PER_SECOND: String(options.tokensPerSecond),
    LIFELINE_LOG_LEVEL: "error",
    // Spread the answers over the workers, so that every worker holds answers to be taken over.
    LIFELINE_WORKER_CONCURRENCY: String(Math.max(1, Math.ceil(options.answers / options.workers))),
  };
  const processes = new Set<LifelineProcess>();
  const launch = async (role: "gateway" | "worker", extra: Record<string, string> = {}): Promise<LifelineProcess> => {
    const child = await startLifeline(role, { ...env, ...extra });
    processes.add(child);
    return child;
  };
  // Each worker has a name of its own, so the `started` entries say which process holds an answer.
  const workers = new Map<string, LifelineProcess>();
  let workersLaunched = 0;
  const launchWorker = async (): Promise<void> => {
    const name = `chaos-worker-${++workersLaunched}`;
    workers.set(name, await launch("worker", { LIFELINE_WORKER_NAME: name }));
  };
  // Replacements that are starting: none is left behind when the run ends.
  const launching = new Set<Promise<unknown>>();
  let proxy: ChaosProxy | undefined;
  const clients: LifelineClient[] = [];
  const stop = new AbortController();
  try {
    let gateway = await launch("gateway");
    const port = new URL(gateway.url).port;
    await Promise.all(Array.from({ length: options.workers }, launchWorker));
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

    // The answers still running as far as their clients know: the ones a fault may be aimed at.
    const running = new Map(started.map((a) => [a.id, { id: a.id, expectedChars: a.expected.length }]));
    const allDone = Promise.all(
      started.map((answer) => checkFollow(viaProxy.get(answer.transport)!.follow(answer.id)).finally(() => running.delete(answer.id))),
    );
    let finished = false;
    const over = (): void => {
      finished = true;
      stop.abort();
    };
    allDone.then(over, over); // a follow that fails is reported below, through allDone
    const deadline = setTimeout(() => stop.abort(), began + options.deadlineMs - Date.now());

    // The chaos, aimed: every killEveryMs the worker that holds an answer mid-stream at that moment
    // is SIGKILLed, and a new one started meanwhile; after the first, the gateway once, while an
    // answer streams.
    const faults: AimedFault[] = [];
    const aim = { gateway: () => gateway.url, answers: () => running.values(), signal: stop.signal };
    const streaming = { ...aim, worker: (name: string) => isRunning(workers.get(name)) };
    try {
      while (!stop.signal.aborted) {
        await sleep(options.killEveryMs, undefined, { signal: stop.signal }).catch(() => undefined);
        const kill = await killWorkerMidAnswer(workers, aim);
        if (!kill) break;
        faults.push(kill);
        processes.delete(workers.get(kill.target)!);
        workers.delete(kill.target);
        const replacement = launchWorker().catch((error: unknown) => progress(`a new worker did not start: ${(error as Error).message}`));
        launching.add(replacement);
        void replacement.finally(() => launching.delete(replacement));
        progress(`SIGKILLed ${kill.target} while it wrote ${kill.answer.id} (entry ${kill.answer.lastOffset}); starting another`);
        if (options.killGateway && !faults.some((f) => f.kind === "gateway")) {
          const victim = gateway;
          const hit = await faultMidAnswer("gateway", victim.url, () => victim.kill(), streaming);
          if (!hit) break;
          faults.push(hit);
          processes.delete(victim);
          gateway = await restartOnPort(launch, port);
          progress(
            `SIGKILLed the gateway while ${hit.answer.id} streamed (entry ${hit.answer.lastOffset}), started it again on the same port`,
          );
        }
      }
    } finally {
      clearTimeout(deadline);
    }
    if (!finished) throw new Error(`the answers did not all end within ${options.deadlineMs} ms`);
    const results = await allDone;

    const wrong: { id: string; why: string }[] = [];
    const timelines = new Map<string, Timeline>();
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
      const timeline = await readTimeline(gateway.url, answer.id);
      if (!timeline) throw new Error(`the gateway did not give the timeline of ${answer.id}`);
      timelines.set(answer.id, timeline);
    }
    const aimed: ChaosFault[] = faults.map((f) => ({
      kind: f.kind,
      target: f.kind === "worker" ? f.target : f.kind,
      answer: f.answer.id,
      atEntry: f.answer.lastOffset,
      inFlight: hitInFlight(timelines.get(f.answer.id)!, f),
    }));
    return {
      seed: options.seed,
      answers: results.length,
      exact: results.length - wrong.length,
      wrong,
      workersKilled: aimed.filter((f) => f.kind === "worker").length,
      gatewayKills: aimed.filter((f) => f.kind === "gateway").length,
      faultsInFlight: aimed.filter((f) => f.inFlight).length,
      faults: aimed,
      connectionsCut: proxy.cuts,
      takeovers: [...timelines.values()].reduce((n, t) => n + t.takeovers, 0),
      clientResumes,
      resets,
      transports,
      durationMs: Date.now() - began,
      ...(options.keep ? { dataDir, ...(started[0] ? { example: started[0].id } : {}) } : {}),
    };
  } finally {
    stop.abort();
    try {
      await Promise.allSettled(launching);
      for (const client of clients) client.close();
      await proxy?.close();
      await Promise.all([...processes].map((p) => p.kill()));
    } finally {
      if (!options.keep) rmSync(dataDir, { recursive: true, force: true });
    }
  }
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
  const faults = r.workersKilled + r.gatewayKills;
  const lines = [
    `Lifeline chaos, seed ${r.seed}: ${r.answers} answers in ${(r.durationMs / 1000).toFixed(1)} s`,
    `  injected: ${r.workersKilled} workers SIGKILLed mid-answer and replaced, the gateway SIGKILLed ${r.gatewayKills} time(s), ${r.connectionsCut} client connections cut`,
    `  aimed: ${r.faultsInFlight} of ${faults} kills hit an answer in flight (${[...new Set(r.faults.map((f) => f.answer))].join(", ") || "none"})`,
    `  recovered: ${r.takeovers} takeovers (an answer continued by another worker), ${r.clientResumes} client resumes, ${r.resets} resets`,
    `  transports: ${Object.entries(r.transports)
      .map(([t, n]) => `${t} ${n}`)
      .join(", ")}`,
    `  ${r.exact} of ${r.answers} answers exact: the same text as an uninterrupted run, every offset once and in order`,
  ];
  for (const f of r.faults) if (!f.inFlight) lines.push(`  MISSED the ${f.target} kill aimed at ${f.answer}: the answer had ended`);
  for (const w of r.wrong) lines.push(`  WRONG ${w.id}: ${w.why}`);
  if (r.dataDir)
    lines.push(`  data kept in ${r.dataDir}; see one answer's story with: lifeline replay ${r.example ?? "<id>"} --data-dir ${r.dataDir}`);
  return `${lines.join("\n")}\n`;
}
