/**
 * The cost of the distributed mode: a Lifeline node (gateway + worker over LIFELINE_ENGINE=redis)
 * against the direct pipe and against the floor (hand-written pipelined XADD + SPUBLISH on the
 * same Redis), side by side in one run, at 100, 1,000 and 5,000 answers at once. The bench starts
 * its own redis-server on a free port; clients run in a child process over real HTTP on loopback.
 *
 *   node --import tsx bench/distributed.ts [--levels 100:20:40:3,1000:4:24:3,5000:1:10:2]
 *        [--first-token-delay-ms 250] [--arrivals-per-second 1000] [--coalesce 20,0]
 *        [--uncoalesced-up-to 100] [--servers direct,floor,lifeline] [--out bench/results/distributed.json]
 *
 * A level is `answers:tokens per second per answer:tokens per answer[:trials]`. Writes the results as
 * JSON and prints them as a table; see docs/benchmarks.md.
 */
import { loadavg } from "node:os";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { startStandalone } from "../test/support/redis-harness.ts";
import { ClientFleet } from "./support/client-fleet.ts";
import {
  formatDistributedTable,
  ratiosOf,
  summarizeDistributed,
  totalCpuUsPerToken,
  type DistributedPhase,
} from "./support/distributed-report.ts";
import { labelOf, startServer, type DistributedSpec } from "./support/servers.ts";
import { WireCommandCounter, commandStats, machineCpuMs, processCpuMs, resetRedis } from "./support/redis-stats.ts";
import { deliveryShape } from "./support/delivery-shape.ts";
import { openFileLimit } from "./support/open-files.ts";
import { gitState, machineInfo, median, writeResults } from "./support/report.ts";
import { tcpCounters, tcpCountersSince } from "./support/tcp-counters.ts";
import { EmitLog, analyse, deliveryFields } from "./support/token-latency.ts";

const { values: args } = parseArgs({
  options: {
    levels: { type: "string", default: "100:20:40:3,1000:4:24:3,5000:1:10:2" },
    "first-token-delay-ms": { type: "string", default: "250" },
    "arrivals-per-second": { type: "string", default: "1000" },
    coalesce: { type: "string", default: "20,0" },
    "uncoalesced-up-to": { type: "string", default: "100" },
    servers: { type: "string", default: "direct,floor,lifeline" },
    out: { type: "string", default: "bench/results/distributed.json" },
  },
});

/** One concurrency level: how many answers at once, how fast and how long each is, how many trials. */
interface Level {
  readonly concurrency: number;
  readonly tokensPerSecond: number;
  readonly maxTokens: number;
  readonly trials: number;
}

const settings = {
  levels: args.levels.split(",").map((part): Level => {
    const [concurrency, tokensPerSecond, maxTokens, trials = 3] = part.split(":").map((n) => Number(n.trim()));
    return {
      concurrency: concurrency ?? Number.NaN,
      tokensPerSecond: tokensPerSecond ?? Number.NaN,
      maxTokens: maxTokens ?? Number.NaN,
      trials,
    };
  }),
  /** The model's think time before its first token, in every mode (clients subscribe meanwhile). */
  firstTokenDelayMs: Number(args["first-token-delay-ms"]),
  /** Clients arrive at this rate: a level of N answers ramps up over N / rate seconds. */
  arrivalsPerSecond: Number(args["arrivals-per-second"]),
  coalesceMs: args.coalesce.split(",").map((n) => Number(n.trim())),
  /** Lifeline with coalescing 0 runs only up to this level (at low per-answer rates it merges nothing anyway). */
  uncoalescedUpTo: Number(args["uncoalesced-up-to"]),
  /** Which servers run (all three for the comparison; one alone for a profile). */
  servers: args.servers.split(",").map((name) => name.trim()),
};

const bad = [
  ...settings.levels.flatMap((l, i) =>
    [l.concurrency, l.tokensPerSecond, l.maxTokens, l.trials].every((n) => Number.isFinite(n) && n > 0)
      ? []
      : [`--levels part ${i + 1}: expected answers:tok/s:tokens[:trials], all positive`],
  ),
  ...(settings.coalesceMs.every((n) => Number.isFinite(n) && n >= 0) ? [] : ["--coalesce: expected non-negative numbers"]),
  ...([settings.firstTokenDelayMs, settings.uncoalescedUpTo].every((n) => Number.isFinite(n) && n >= 0)
    ? []
    : ["--first-token-delay-ms, --uncoalesced-up-to: expected non-negative numbers"]),
  ...(settings.arrivalsPerSecond > 0 ? [] : ["--arrivals-per-second: expected a positive number"]),
  ...settings.servers.flatMap((name) =>
    ["direct", "floor", "lifeline"].includes(name) ? [] : [`--servers: unknown server ${name} (direct, floor, lifeline)`],
  ),
];
if (bad.length > 0) throw new Error(`bench settings:\n  ${bad.join("\n  ")}`);

/** Commands the bench's admin connection sends between phases, left out of the server-side counts. */
const ADMIN_COMMANDS = new Set(["info", "config|resetstat", "flushall"]);

let phaseCount = 0;

interface Context {
  readonly fleet: ClientFleet;
  readonly redisUrl: string;
  readonly redisPid: number;
  readonly admin: Redis;
  readonly wire: WireCommandCounter;
}

async function runPhase(ctx: Context, spec: DistributedSpec, level: Level, trial: number): Promise<DistributedPhase> {
  const emits = new EmitLog();
  const prefix = `b${++phaseCount}`;
  await resetRedis(ctx.admin);
  const server = await startServer(spec, {
    emits,
    tokensPerSecond: level.tokensPerSecond,
    concurrency: level.concurrency,
    firstTokenDelayMs: settings.firstTokenDelayMs,
    redis: { url: ctx.redisUrl, prefix },
  });
  try {
    const clock = await ctx.fleet.clockOffset();
    const loadAverage = loadavg()[0] ?? Number.NaN;
    const rampMs = (level.concurrency / settings.arrivalsPerSecond) * 1000;
    const tcp = tcpCounters();
    const cpu = process.cpuUsage();
    const redisCpu = processCpuMs(ctx.redisPid);
    const machineCpu = machineCpuMs();
    const elu = performance.eventLoopUtilization();
    ctx.wire.take();
    const result = await ctx.fleet.run({
      baseUrl: server.url,
      ask: server.ask,
      tag: `bench-${process.pid}-${prefix}`,
      concurrency: level.concurrency,
      maxTokens: level.maxTokens,
      rampMs,
    });
    const used = process.cpuUsage(cpu);
    const redisCpuMs = processCpuMs(ctx.redisPid) - redisCpu;
    const otherCpuMs = machineCpuMs() - machineCpu;
    const utilization = performance.eventLoopUtilization(elu).utilization;
    const requests = ctx.wire.take();
    const dropped = tcpCountersSince(tcp);
    const stats = Object.entries(await commandStats(ctx.admin)).filter(([name]) => !ADMIN_COMMANDS.has(name));
    const analysis = analyse(result.traces, emits, level.maxTokens, clock.offsetMs);
    const shape = deliveryShape(result.traces, emits, Math.min(...result.traces.map((t) => t.startedAt)));
    const tokens = Math.max(1, analysis.tokens);
    const serverCpuMs = (used.user + used.system) / 1000;
    const perToken = (entries: [string, number][]): Record<string, number> =>
      Object.fromEntries(entries.filter(([, n]) => n > 0).map(([name, n]) => [name, n / tokens]));
    return {
      trial,
      concurrency: level.concurrency,
      tokensPerSecondPerAnswer: level.tokensPerSecond,
      maxTokens: level.maxTokens,
      rampMs,
      mode: spec.mode,
      coalesceMs: spec.mode === "lifeline" ? spec.coalesceMs : null,
      label: labelOf(spec),
      answers: analysis.answers,
      tokens: analysis.tokens,
      deltaFrames: analysis.deltaFrames,
      wallMs: result.wallMs,
      tokensPerSecond: analysis.tokens / (result.wallMs / 1000),
      offeredTokensPerSecond: level.concurrency * level.tokensPerSecond,
      sustainedTokensPerSecond: shape.sustainedTokensPerSecond,
      sustainedWindowMs: shape.sustainedWindowMs,
      peakStreaming: shape.peakStreaming,
      deliveredPerSecond: shape.perSecond,
      ...deliveryFields(analysis),
      serverCpuMs,
      serverCpuUsPerToken: (serverCpuMs / tokens) * 1000,
      serverEventLoopUtilization: utilization,
      redisCpuMs,
      redisCpuUsPerToken: spec.mode === "direct" ? 0 : (redisCpuMs / tokens) * 1000,
      redisRequestsPerToken: Object.values(requests).reduce((a, b) => a + b, 0) / tokens,
      redisRequestsByCommandPerToken: perToken(Object.entries(requests)),
      redisCallsPerToken: perToken(stats.map(([name, stat]) => [name, stat.calls])),
      redisUsecPerToken: perToken(stats.map(([name, stat]) => [name, stat.usec])),
      clientCpuMs: result.clientCpuMs,
      neighbourCores: Math.max(0, otherCpuMs - serverCpuMs - redisCpuMs - result.clientCpuMs) / result.wallMs,
      listenOverflows: dropped.listenOverflows,
      synRetransmits: dropped.synRetransmits,
      loadAverage,
      clockOffsetMs: clock.offsetMs,
      clockRoundTripMs: clock.roundTripMs,
    };
  } finally {
    await server.stop();
  }
}

async function main(): Promise<void> {
  const started = Date.now();
  const specs = (
    [
      { mode: "direct" },
      { mode: "floor" },
      ...settings.coalesceMs.map((coalesceMs) => ({ mode: "lifeline" as const, coalesceMs })),
    ] satisfies DistributedSpec[]
  ).filter((spec) => settings.servers.includes(spec.mode));
  const redis = await startStandalone();
  const admin = new Redis(redis.url, { connectionName: "bench-admin" });
  const fleet = await ClientFleet.start();
  const ctx: Context = { fleet, redisUrl: redis.url, redisPid: redis.pid, admin, wire: new WireCommandCounter(admin) };
  const redisVersion = /redis_version:(\S+)/.exec(await admin.info("server"))?.[1] ?? "unknown";
  const phases: DistributedPhase[] = [];
  const src = gitState();
  try {
    // Warm the JIT, ioredis and the sockets once per server kind; these phases are not reported.
    for (const spec of specs) await runPhase(ctx, spec, { concurrency: 50, tokensPerSecond: 20, maxTokens: 20, trials: 0 }, 0);
    for (const level of settings.levels) {
      const levelSpecs = specs.filter(
        (spec) => spec.mode !== "lifeline" || spec.coalesceMs > 0 || level.concurrency <= settings.uncoalescedUpTo,
      );
      for (let trial = 1; trial <= level.trials; trial++) {
        let direct: DistributedPhase | undefined;
        let floor: DistributedPhase | undefined;
        for (const spec of levelSpecs) {
          const measured = await runPhase(ctx, spec, level, trial);
          const phase: DistributedPhase = {
            ...measured,
            ...(direct && spec.mode !== "direct" ? { vsDirect: ratiosOf(measured, direct) } : {}),
            ...(floor && spec.mode === "lifeline" ? { vsFloor: ratiosOf(measured, floor) } : {}),
          };
          if (spec.mode === "direct") direct = phase;
          if (spec.mode === "floor") floor = phase;
          phases.push(phase);
          process.stderr.write(
            `  ${String(level.concurrency).padStart(4)} × ${phase.label.padEnd(28)} trial ${trial}: ${phase.sustainedTokensPerSecond.toFixed(0).padStart(5)} of ${phase.offeredTokensPerSecond} tok/s sustained ` +
              `(window ${(phase.sustainedWindowMs / 1000).toFixed(1)} s), p50 ${phase.latencyMs.p50.toFixed(2)} ms, p99 ${phase.latencyMs.p99.toFixed(2)} ms, ` +
              `CPU ${totalCpuUsPerToken(phase).toFixed(0)} µs/tok, peak ${phase.peakStreaming} streaming, neighbours ${phase.neighbourCores.toFixed(2)} cores, ${phase.wrong} wrong${phase.problemSamples.length > 0 ? ` (${phase.problemSamples.join("; ")})` : ""}\n`,
          );
          await sleep(500); // let closed sockets and timers settle before the next server starts
        }
      }
    }
  } finally {
    await fleet.stop();
    admin.disconnect();
    await redis.stop();
  }

  const summary = summarizeDistributed(phases);
  const results = {
    benchmark: "distributed",
    date: new Date().toISOString(),
    durationMs: Date.now() - started,
    machine: {
      ...machineInfo(),
      redis: redisVersion,
      openFiles: { servers: openFileLimit(), clients: fleet.fdLimit },
    },
    source: src,
    settings: {
      ...settings,
      redis: `redis-server ${redisVersion} on 127.0.0.1, no persistence (save "", appendonly no), as the test harness starts it; FLUSHALL and CONFIG RESETSTAT before every phase`,
      lifeline:
        "startNode with gateway and worker in this process, LIFELINE_ENGINE=redis, worker concurrency = answers at once, default lease (10 s), log level warn",
      floor:
        "bench/support/redis-floor.ts: per token XADD <offset>-0 + SPUBLISH pipelined on one connection; one subscriber connection; each notification -> XRANGE (last, + -> SSE",
      processes: "bench process: the server under test and the sim; child process: every client; redis-server: its own process",
      latency:
        "model emits a token (sim onToken, bench process) -> a client has parsed the SSE frame holding it; tokens emitted before the client's stream opened are counted as catch-up, not in the percentiles",
      sustained:
        "tokens received per second on the plateau of the phase: while at least 90% of peakStreaming answers were streaming (an answer streams from its first to its last token); peakStreaming below the level means the server never ran every answer at once",
      throughput: "tokensPerSecond: tokens received / (first request -> last stream end), ramp and drain included",
      cpu: "serverCpuUsPerToken: bench process (server + sim); redisCpuUsPerToken: redis-server, from /proc",
      summary:
        "per level and server, the median over trials; ratios are medians of per-trial ratios against the direct pipe and the floor run just before in the same trial",
    },
    summary,
    phases,
  };
  writeResults(args.out, results);

  console.log(
    `\nLifeline distributed (redis) vs direct pipe vs XADD+PUBLISH floor — ${results.date}, ${results.machine.cpus} × ${results.machine.cpuModel}, Node ${results.machine.node}, Redis ${redisVersion}`,
  );
  console.log(
    `latency = model emit -> client parsed; sustained = on the plateau (>= 90% of peak answers streaming); think time ${settings.firstTokenDelayMs} ms; clients arrive at ${settings.arrivalsPerSecond}/s\n`,
  );
  console.log(formatDistributedTable(summary));
  const loads = phases.map((p) => p.loadAverage);
  const neighbours = phases.map((p) => p.neighbourCores);
  console.log(
    `\nmedians of ${settings.levels.map((l) => `${l.trials} trials at ${l.concurrency}`).join(", ")}; load average ${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)} ` +
      `(median ${median(loads).toFixed(1)}, this bench included); other processes used ${Math.min(...neighbours).toFixed(2)}–${Math.max(...neighbours).toFixed(2)} cores (median ${median(neighbours).toFixed(2)}) of ${results.machine.cpus}`,
  );
  const wrong = phases.reduce((n, p) => n + p.wrong, 0);
  const answers = phases.reduce((n, p) => n + p.answers, 0);
  console.log(
    `${wrong === 0 ? `all ${answers} answers were byte-identical to the uninterrupted sim text` : `${wrong} of ${answers} answers mismatching or broken`}; results in ${args.out} (${((Date.now() - started) / 1000).toFixed(0)} s)`,
  );
  if (wrong > 0) process.exitCode = 1;
}

await main();
