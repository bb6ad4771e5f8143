/**
 * Lifeline against Vercel's `resumable-stream`, side by side on one Redis in one run (issue 10).
 * Per phase: a stamped model in its own process streams OpenAI-compatible chunks, one 40-byte
 * token each carrying its answer, its sequence number and the moment it was written; a reader
 * process starts S answers and follows each over SSE, checks every token arrives once and in
 * order, and times it from the model's write to its own parse. Systems: resumable-stream (a
 * producer process + Redis pub/sub), Lifeline distributed (`lifeline gateway` + `lifeline worker`
 * on Redis) and Lifeline embedded (`lifeline start` on sqlite). Repetitions are interleaved.
 *
 *   npm run bench:peers -- [--workloads paced-100,paced-1000,fast-closed-100,fast-open-100]
 *        [--systems resumable-stream,distributed,embedded] [--reps 3] [--out bench/results/peers.json]
 *        [--paced-slack-s 25] [--paced-deadline-s 40] [--cpu-profile DIR]
 *        [--lifeline-node-options "--max-semi-space-size=64"] [--load-niceness 0] [--tokens-per-write 1] [--workers 1]
 *        [--control <busy-ms>:<rest-ms>] [--own-cpu <process>]
 *
 * `--load-niceness N` runs the load (the model and the readers, every thread of each) at that
 * niceness, below the systems measured: a diagnosis of how much of a system's event-loop delay is
 * the machine's CPU going to the load rather than its own work. Not for the figures compared.
 *
 * `--tokens-per-write N` makes the paced model write its tokens N at a time (at the same rate per
 * answer, each write when the last of its tokens is due), so each read of a model's socket brings
 * about N: a diagnosis of what a system pays per read rather than per token. Not for the figures
 * compared.
 *
 * `--control B:R` runs one more measured process beside the systems, at their priority: it keeps a
 * CPU busy B ms at a time, rests R ms (0: one turn of its loop) and makes no garbage
 * (`support/control-child.ts`). No turn of its own is longer than B ms, so its event-loop delays
 * past that are the machine's: a diagnosis, like `--load-niceness`, and a load of its own.
 *
 * `--own-cpu P` gives the measured process named P (`worker`, `gateway`, `node`, `producer`, …) the
 * second CPU to itself and puts every other process of the phase, the bench's own included, on the
 * first (`taskset`, every thread; threads started later inherit it). A phase without such a process
 * runs as usual. A diagnosis of how much of P's event-loop delay is the cores it shares, like
 * `--load-niceness`; not for the figures compared.
 *
 * `--workers N` runs the distributed system with N workers, each taking its share of the answers
 * (the issue's figures are with one).
 *
 * Writes JSON and prints the tables of docs/benchmarks.md; exits 1 if any Lifeline answer was not
 * exact or any answer of either system was broken (resumable-stream's answers cut at the deadline
 * are its capacity: reported, not a failure).
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { availableParallelism, loadavg, setPriority, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { startStandalone } from "../test/support/redis-harness.ts";
import { PROBE_NODE_ARGS, benchFile, cpuOf, markProbes, probeEnv, probesReady, type MeasuredProcess } from "./support/loop-probes.ts";
import { PeerReaders, type ReaderPlan } from "./support/peer-readers.ts";
import { SYSTEMS, StampedModel, startSystem, type SystemName } from "./support/peer-systems.ts";
import { formatMainTable, formatProcessTable, ratiosOf, summarize, type PeerPhase, type ProcessRecord } from "./support/peers-report.ts";
import { machineCpuMs, resetRedis } from "./support/redis-stats.ts";
import { gitState, machineInfo, writeResults } from "./support/report.ts";
import { tcpCounters, tcpCountersSince } from "./support/tcp-counters.ts";
import type { ModelPace } from "./support/stamped-model.ts";

const { values: args } = parseArgs({
  options: {
    workloads: { type: "string", default: "paced-100,paced-1000,fast-closed-100,fast-open-100" },
    systems: { type: "string", default: SYSTEMS.join(",") },
    reps: { type: "string", default: "3" },
    "tokens-per-second": { type: "string", default: "30" },
    "paced-tokens": { type: "string", default: "300" },
    "fast-tokens": { type: "string", default: "2000" },
    window: { type: "string", default: "64" },
    "first-token-delay-ms": { type: "string", default: "250" },
    "arrivals-per-second": { type: "string", default: "1000" },
    "fast-deadline-s": { type: "string", default: "30" },
    "paced-slack-s": { type: "string", default: "25" },
    "paced-deadline-s": { type: "string", default: "40" },
    "cpu-profile": { type: "string" },
    "lifeline-node-options": { type: "string", default: "" },
    "load-niceness": { type: "string", default: "0" },
    "tokens-per-write": { type: "string", default: "1" },
    workers: { type: "string", default: "1" },
    control: { type: "string" },
    "own-cpu": { type: "string" },
    out: { type: "string", default: "bench/results/peers.json" },
  },
});

/** A workload: `paced-<S>`, `fast-closed-<S>` or `fast-open-<S>`. */
interface Workload {
  readonly name: string;
  readonly kind: "paced" | "closed" | "open";
  readonly answers: number;
}

const settings = {
  workloads: args.workloads.split(",").map((name): Workload => {
    const match = /^(paced|fast-closed|fast-open)-(\d+)$/.exec(name.trim());
    if (!match) throw new Error(`--workloads: ${name} is not paced-<S>, fast-closed-<S> or fast-open-<S>`);
    const kind = match[1] === "paced" ? "paced" : match[1] === "fast-closed" ? "closed" : "open";
    return { name: name.trim(), kind, answers: Number(match[2]) };
  }),
  systems: args.systems.split(",").map((name) => {
    if (!(SYSTEMS as readonly string[]).includes(name.trim())) throw new Error(`--systems: ${name} is not one of ${SYSTEMS.join(", ")}`);
    return name.trim() as SystemName;
  }),
  reps: Number(args.reps),
  tokensPerSecond: Number(args["tokens-per-second"]),
  pacedTokens: Number(args["paced-tokens"]),
  tokensPerWrite: Number(args["tokens-per-write"]),
  workers: Number(args.workers),
  fastTokens: Number(args["fast-tokens"]),
  window: Number(args.window),
  firstTokenDelayMs: Number(args["first-token-delay-ms"]),
  arrivalsPerSecond: Number(args["arrivals-per-second"]),
  fastDeadlineMs: Number(args["fast-deadline-s"]) * 1000,
  pacedSlackMs: Number(args["paced-slack-s"]) * 1000,
  pacedDeadlineMs: Number(args["paced-deadline-s"]) * 1000,
  lifelineNodeOptions: args["lifeline-node-options"].split(" ").filter((option) => option !== ""),
  cpuProfileDir: args["cpu-profile"] === undefined ? undefined : resolve(args["cpu-profile"]),
  loadNiceness: Number(args["load-niceness"]),
  control: args.control,
  ownCpu: args["own-cpu"],
};
if (settings.control !== undefined && !/^\d{1,4}:\d{1,4}$/.test(settings.control))
  throw new Error("--control: <busy-ms>:<rest-ms>, each 0 to 9999 (e.g. 10:0)");
if (settings.ownCpu !== undefined && !/^[a-z-]{1,40}$/.test(settings.ownCpu))
  throw new Error("--own-cpu: the name of a measured process (worker, gateway, node, producer, redis-server, readers, model)");
if (settings.ownCpu !== undefined && (process.platform !== "linux" || availableParallelism() < 2))
  throw new Error("--own-cpu: needs Linux (taskset) and at least two CPUs");
if (!(Number.isInteger(settings.loadNiceness) && settings.loadNiceness >= 0 && settings.loadNiceness <= 19))
  throw new Error("--load-niceness: an integer from 0 to 19");
const numbers = [
  settings.reps,
  settings.tokensPerSecond,
  settings.pacedTokens,
  settings.fastTokens,
  settings.window,
  settings.tokensPerWrite,
];
if (!numbers.every((n) => Number.isInteger(n) || n > 0) || numbers.some((n) => !(n > 0)))
  throw new Error("--reps, --tokens-per-second, --paced-tokens, --fast-tokens, --window and --tokens-per-write must be positive numbers");
if (!Number.isInteger(settings.tokensPerWrite)) throw new Error("--tokens-per-write: a whole number of tokens");
if (!(Number.isInteger(settings.workers) && settings.workers >= 1 && settings.workers <= 8)) throw new Error("--workers: 1 to 8");
if (settings.workloads.some((w) => w.answers < 1 || w.answers > 10_000)) throw new Error("--workloads: S must be 1 to 10,000");
// Lifeline takes max_tokens up to 32,768 (docs/http-api.md).
if (Math.max(settings.pacedTokens, settings.fastTokens) > 32_768) throw new Error("--paced-tokens, --fast-tokens: at most 32,768");

/** Answers the warm-up runs in every phase before the measured window, numbered from here. */
const WARM_UP = { answers: 20, tokens: 30, firstAnswer: 90_000 };

function paceOf(workload: Workload): ModelPace {
  const firstTokenDelayMs = settings.firstTokenDelayMs;
  if (workload.kind === "paced")
    return { kind: "paced", tokensPerSecond: settings.tokensPerSecond, firstTokenDelayMs, tokensPerWrite: settings.tokensPerWrite };
  if (workload.kind === "closed") return { kind: "closed", window: settings.window, firstTokenDelayMs };
  return { kind: "open", firstTokenDelayMs };
}

function planOf(workload: Workload, api: ReaderPlan["api"], baseUrl: string, tag: string, clockCorrectionMs: number): ReaderPlan {
  const rampMs = (workload.answers / settings.arrivalsPerSecond) * 1000;
  const tokensPerAnswer = workload.kind === "paced" ? settings.pacedTokens : settings.fastTokens;
  // A paced answer takes tokens / rate; a system may fall behind by --paced-slack-s more, up to
  // --paced-deadline-s in all (an overload run gives it longer, to see every answer end).
  const pacedMs = rampMs + settings.firstTokenDelayMs + (tokensPerAnswer / settings.tokensPerSecond) * 1000;
  const deadlineMs =
    workload.kind === "paced" ? Math.min(settings.pacedDeadlineMs, pacedMs + settings.pacedSlackMs) : settings.fastDeadlineMs;
  return {
    api,
    baseUrl,
    tag,
    firstAnswer: 0,
    answers: workload.answers,
    tokensPerAnswer,
    rampMs,
    deadlineMs,
    acks: workload.kind === "closed",
    clockCorrectionMs,
  };
}

/** Every thread of process `pid` at `niceness` (Linux keeps a niceness per thread). */
function lowerPriority(pid: number, niceness: number): void {
  for (const task of readdirSync(`/proc/${pid}/task`)) setPriority(Number(task), niceness);
}

/**
 * `--own-cpu`: the process named `name` on CPU 1 alone, every other one of `processes` and the
 * bench on CPU 0, every thread of each. Nothing changes when no process has that name. Returns what
 * gives the bench and the processes that outlive the phase (its Redis) every CPU again.
 */
function pinProcesses(processes: readonly MeasuredProcess[], name: string): () => Promise<void> {
  if (!processes.some((p) => p.name === name)) return () => Promise.resolve();
  const pin = (pid: number, cpus: string): void => {
    execFileSync("taskset", ["--all-tasks", "--pid", "--cpu-list", cpus, String(pid)], { stdio: "ignore" });
  };
  const pids = [process.pid, ...processes.map((p) => p.pid)];
  for (const pid of pids) pin(pid, processes.some((p) => p.pid === pid && p.name === name) ? "1" : "0");
  return () => {
    const every = `0-${availableParallelism() - 1}`;
    for (const pid of pids) {
      try {
        pin(pid, every);
      } catch {
        // a process of the phase that has exited
      }
    }
    return Promise.resolve();
  };
}

/** The control process (`--control`, `support/control-child.ts`): measured like the others, at the systems' priority. */
function startControl(dir: string, turns: string): { readonly process: MeasuredProcess; stop(): Promise<void> } {
  const env = probeEnv(dir, "control");
  const child = spawn(process.execPath, [...PROBE_NODE_ARGS, benchFile("control-child.ts")], {
    env: { ...process.env, ...env, CONTROL_TURNS: turns },
    stdio: "inherit",
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return {
    process: { name: "control", pid: child.pid ?? -1, probeFile: env.LOOP_PROBE_OUT },
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
}

let phaseCount = 0;

interface Context {
  readonly redis: { readonly url: string; readonly pid: number };
  readonly admin: Redis;
}

async function runPhase(ctx: Context, workload: Workload, system: SystemName, rep: number): Promise<PeerPhase> {
  const tag = `peers${++phaseCount}`;
  const dir = mkdtempSync(join(tmpdir(), "lifeline-peers-"));
  await resetRedis(ctx.admin);
  const stops: (() => Promise<void>)[] = [];
  try {
    const profileName = `${workload.name}-${system}-rep${rep}`;
    const profileOf = (process: string): string | undefined =>
      settings.cpuProfileDir === undefined ? undefined : join(settings.cpuProfileDir, `${profileName}-${process}.cpuprofile`);
    const model = await StampedModel.start(paceOf(workload), dir, profileOf("model"));
    stops.push(() => model.stop());
    const running = await startSystem(system, {
      dir,
      modelUrl: model.url,
      redis: ctx.redis,
      prefix: tag,
      concurrency: Math.max(workload.answers, WARM_UP.answers),
      workers: settings.workers,
      profileName,
      nodeOptions: settings.lifelineNodeOptions,
      ...(settings.cpuProfileDir === undefined ? {} : { profileDir: settings.cpuProfileDir }),
    });
    stops.unshift(() => running.stop());
    const readerEnv = probeEnv(dir, "readers", profileOf("readers"));
    const readers = await PeerReaders.start([...PROBE_NODE_ARGS], { ...process.env, ...readerEnv });
    stops.unshift(() => readers.stop());
    readers.onAcks = (acks) => model.acks(acks);
    const control = settings.control === undefined ? undefined : startControl(dir, settings.control);
    if (control) stops.unshift(control.stop);
    const processes: MeasuredProcess[] = [
      ...running.processes,
      { name: "readers", pid: readers.pid, probeFile: readerEnv.LOOP_PROBE_OUT },
      model.process,
      ...(control ? [control.process] : []),
    ];
    await probesReady(processes);
    if (settings.loadNiceness > 0) for (const load of [readers.pid, model.process.pid]) lowerPriority(load, settings.loadNiceness);
    if (settings.ownCpu !== undefined) stops.push(pinProcesses(processes, settings.ownCpu));

    const modelClock = await model.clockOffset();
    const readersClock = await readers.clockOffset();
    const correction = modelClock.offsetMs - readersClock.offsetMs;
    const plan = planOf(workload, running.api, running.url, tag, correction);
    // Warm-up: the JIT, the connections and the model path, left out of every figure.
    await readers.run({ ...plan, ...WARM_UP, tokensPerAnswer: WARM_UP.tokens, rampMs: 0, deadlineMs: 30_000, tag: `${tag}w` });
    const warm = await readers.report();
    if (warm.exact !== warm.answers) process.stderr.write(`  warm-up of ${system}: ${warm.problemSamples.join("; ")}\n`);

    await markProbes(processes);
    const loadAverage = loadavg()[0] ?? Number.NaN;
    const cpuBefore = cpuOf(processes);
    const machineBefore = machineCpuMs();
    const ownBefore = process.cpuUsage();
    const windowStart = performance.now();
    const tcp = tcpCounters();
    await readers.run(plan);
    const cpuAfter = cpuOf(processes);
    const windowMs = performance.now() - windowStart;
    const own = process.cpuUsage(ownBefore);
    const machineUsedMs = machineCpuMs() - machineBefore;
    const dropped = tcpCountersSince(tcp);
    const loops = await markProbes(processes);
    const result = await readers.report();

    const tokens = Math.max(1, result.tokens);
    const records: ProcessRecord[] = processes.map((p) => {
      const cpuMs = (cpuAfter[p.name] ?? Number.NaN) - (cpuBefore[p.name] ?? Number.NaN);
      const loop = loops[p.name];
      return {
        name: p.name,
        cpuMs,
        cpuUsPerToken: (cpuMs / tokens) * 1000,
        system: running.processes.includes(p),
        ...(loop === undefined
          ? {}
          : {
              loop: {
                windowMs: loop.windowMs,
                p50Ms: loop.p50Ms,
                p99Ms: loop.p99Ms,
                maxMs: loop.maxMs,
                meanMs: loop.meanMs,
                stallsOver100Ms: loop.stallsOver100Ms,
                ...(loop.stallsOnCpu === undefined ? {} : { stallsOnCpu: loop.stallsOnCpu }),
                ...(loop.held === undefined ? {} : { held: loop.held }),
                ...(loop.gc === undefined ? {} : { gc: loop.gc }),
                ...(loop.profile === undefined ? {} : { profile: loop.profile }),
              },
            }),
      };
    });
    const oursMs = records.reduce((n, r) => n + r.cpuMs, 0) + (own.user + own.system) / 1000;
    return {
      workload: workload.name,
      system,
      rep,
      answers: workload.answers,
      tokensPerAnswer: plan.tokensPerAnswer,
      offeredTokensPerSecond: workload.kind === "paced" ? workload.answers * settings.tokensPerSecond : null,
      deliveredTokensPerSecond: workload.kind === "paced" ? result.plateauTokensPerSecond : result.spanTokensPerSecond,
      readers: result,
      processes: records,
      systemCpuUsPerToken: records.filter((r) => r.system).reduce((n, r) => n + r.cpuUsPerToken, 0),
      loadAverage,
      neighbourCores: Math.max(0, machineUsedMs - oursMs) / windowMs,
      listenOverflows: dropped.listenOverflows,
      synRetransmits: dropped.synRetransmits,
      clock: {
        modelOffsetMs: modelClock.offsetMs,
        readersOffsetMs: readersClock.offsetMs,
        roundTripMs: Math.max(modelClock.roundTripMs, readersClock.roundTripMs),
      },
    };
  } finally {
    for (const stop of stops) await stop().catch((error: unknown) => process.stderr.write(`  stopping: ${String(error)}\n`));
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Lifeline's latency before and after the log: `(to the log p50/p99 + from it p50/p99)`. */
function split(r: PeerPhase["readers"]): string {
  const s = r.latencySplitMs;
  return s
    ? ` (to the log ${s.toLog.p50.toFixed(0)}/${s.toLog.p99.toFixed(0)} + from it ${s.fromLog.p50.toFixed(0)}/${s.fromLog.p99.toFixed(0)})`
    : "";
}

function describe(phase: PeerPhase): string {
  const r = phase.readers;
  const loops = phase.processes
    .filter((p) => p.loop)
    .map((p) => `${p.name} ${p.loop?.maxMs.toFixed(0)}`)
    .join(", ");
  return (
    `  ${phase.workload.padEnd(16)} ${phase.system.padEnd(16)} rep ${phase.rep}: ${phase.deliveredTokensPerSecond.toFixed(0).padStart(6)}` +
    `${phase.offeredTokensPerSecond === null ? "" : ` of ${phase.offeredTokensPerSecond}`} tok/s, p50 ${r.latencyMs.p50.toFixed(2)} ms, ` +
    `p99 ${r.latencyMs.p99.toFixed(2)} ms, max ${r.latencyMs.max.toFixed(0)} ms${split(r)}, CPU ${phase.systemCpuUsPerToken.toFixed(0)} µs/tok, ` +
    `loop max ms: ${loops}; neighbours ${phase.neighbourCores.toFixed(2)} cores; ${phase.listenOverflows} listen overflows; ${r.exact}/${r.answers} exact${r.problemSamples.length > 0 ? ` (${r.problemSamples.slice(0, 6).join("; ")})` : ""}\n`
  );
}

async function main(): Promise<void> {
  const started = Date.now();
  if (settings.cpuProfileDir !== undefined) mkdirSync(settings.cpuProfileDir, { recursive: true });
  const redis = await startStandalone();
  const admin = new Redis(redis.url, { connectionName: "bench-admin" });
  const redisVersion = /redis_version:(\S+)/.exec(await admin.info("server"))?.[1] ?? "unknown";
  const ctx: Context = { redis: { url: redis.url, pid: redis.pid }, admin };
  const phases: PeerPhase[] = [];
  try {
    for (const workload of settings.workloads) {
      for (let rep = 1; rep <= settings.reps; rep++) {
        let base: PeerPhase | undefined;
        for (const system of settings.systems) {
          const measured = await runPhase(ctx, workload, system, rep);
          const phase = base && system !== "resumable-stream" ? { ...measured, vsResumableStream: ratiosOf(measured, base) } : measured;
          if (system === "resumable-stream") base = phase;
          phases.push(phase);
          process.stderr.write(describe(phase));
          await sleep(500); // closed sockets and timers settle before the next system starts
        }
      }
    }
  } finally {
    admin.disconnect();
    await redis.stop();
  }

  const summary = summarize(phases);
  const results = {
    benchmark: "peers",
    date: new Date().toISOString(),
    durationMs: Date.now() - started,
    machine: { ...machineInfo(), redis: redisVersion },
    source: gitState(),
    settings: {
      ...settings,
      workloads: settings.workloads.map((w) => w.name),
      warmUp: WARM_UP,
      model:
        "bench/support/stamped-model.ts in its own process: OpenAI-compatible chat.completion.chunk SSE, one 40-byte stamped token per chunk, " +
        "250 ms before the first token; paced: tokens-per-second per answer on a fixed schedule, tokens-per-write frames in one write (when the last of them is due); fast-closed: a token only while fewer than `window` of the answer's tokens are unreceived by its reader (acks every 2 ms over IPC through the bench); fast-open: as fast as the socket takes them; every write waits for drain when the socket is full",
      readers:
        "bench/support/peer-readers-child.ts in its own process: one connection per answer on 127.0.0.1, arriving at arrivals-per-second; resumable-stream: POST /answers/:id then GET /answers/:id (resumeExistingStream); Lifeline: POST /v1/generations then GET /v1/generations/:id/events",
      resumableStream:
        "bench/support/rs-producer.ts: createNewResumableStream on POST (the POST's own copy dropped), resumeExistingStream on GET; ioredis publisher and subscriber (resumable-stream/ioredis) on the bench's Redis; the model read with fetch and the product's SseParser, one SSE frame per token",
      lifeline:
        "bin/lifeline gateway + bin/lifeline worker (distributed, LIFELINE_ENGINE=redis) or bin/lifeline start (embedded, sqlite in a fresh data dir); LIFELINE_CONFIG names the stamped model through the openai-compatible provider; worker concurrency = S shared by --workers workers (1 unless told); every other option at its default (coalescing 20 ms, lease 10 s)",
      lifelineNodeOptions: settings.lifelineNodeOptions.join(" "),
      latency:
        "model writes the token (its stamp) → the reader parsed the SSE frame holding it, clocks aligned over IPC; tokens written before the reader sent its follow request (GET) are catch-up, outside the percentiles",
      delivered:
        "paced: tokens per second received while at least 90 % of the most answers streaming at once were streaming (the plateau); fast: all tokens / (first token received → last token received)",
      cpu: "user + system CPU from /proc/<pid>/stat over the measured window, per token delivered; the system's CPU: producer + redis-server, gateway + worker + redis-server, or the embedded node",
      tcp: "listenOverflows, synRetransmits: the machine's TcpExt counters over the measured window (connections a full accept queue dropped, SYNs sent again)",
      neighbours:
        "neighbourCores: CPU the rest of the machine used during the measured window (/proc/stat minus every process of the phase and the bench), in cores",
      eventLoop: "monitorEventLoopDelay({resolution: 10}) in every Node process (bench/support/loop-probe.ts), over the measured window",
    },
    summary,
    phases,
  };
  writeResults(args.out, results);

  console.log(
    `\nLifeline against resumable-stream — ${results.date}, ${results.machine.cpus} × ${results.machine.cpuModel}, Node ${results.machine.node}, Redis ${redisVersion}, source ${results.source}\n`,
  );
  console.log(formatMainTable(summary));
  console.log("");
  console.log(formatProcessTable(summary));
  // The bench fails on what Lifeline promises: each of its answers exact, and no system's answer
  // broken (a gap, repeat or reordering). A peer's answers cut at the deadline are its capacity,
  // reported here and in the tables, not a failure of the run.
  const lifeline = phases.filter((p) => p.system !== "resumable-stream");
  const answers = lifeline.reduce((n, p) => n + p.answers, 0);
  const inexact = lifeline.reduce((n, p) => n + p.answers - p.readers.exact, 0);
  const peer = phases.filter((p) => p.system === "resumable-stream");
  const peerBroken = peer.reduce((n, p) => n + p.readers.broken, 0);
  const peerCut = peer.reduce((n, p) => n + p.readers.incomplete, 0);
  console.log(
    `\nmedians of ${settings.reps} interleaved repetitions; ratios are medians of per-repetition ratios against resumable-stream; ` +
      `${inexact === 0 ? `all ${answers} Lifeline answers exact` : `${inexact} of ${answers} Lifeline answers not exact`}` +
      (peer.length > 0 ? `; resumable-stream: ${peerCut} answers cut at the deadline, ${peerBroken} broken` : "") +
      `; results in ${args.out} (${((Date.now() - started) / 1000).toFixed(0)} s)`,
  );
  if (inexact > 0 || peerBroken > 0) process.exitCode = 1;
}

await main();
