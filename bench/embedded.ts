/**
 * The cost of the durable log: the embedded node (gateway + worker + sqlite in one process)
 * against a direct pipe from the same simulated model to SSE, side by side in one run, at several
 * concurrency levels. Clients run in a child process over real HTTP on loopback.
 *
 *   node --import tsx bench/embedded.ts [--levels 1,100,1000] [--tokens-per-second 50]
 *        [--max-tokens 100] [--first-token-delay-ms 250] [--coalesce 20,0] [--uncoalesced-up-to 100]
 *        [--min-answers 2] [--trials 3] [--out bench/results/embedded.json]
 *
 * Writes the results as JSON and prints them as a table; see docs/benchmarks.md.
 */
import { loadavg } from "node:os";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { ClientFleet } from "./support/client-fleet.ts";
import { compare, formatTable, machineInfo, median, summarize, writeResults, type PhaseRecord } from "./support/report.ts";
import { labelOf, startServer, type EmbeddedSpec } from "./support/servers.ts";
import { EmitLog, analyse, deliveryFields } from "./support/token-latency.ts";

const { values: args } = parseArgs({
  options: {
    levels: { type: "string", default: "1,100,1000" },
    "tokens-per-second": { type: "string", default: "50" },
    "max-tokens": { type: "string", default: "100" },
    "first-token-delay-ms": { type: "string", default: "250" },
    coalesce: { type: "string", default: "20,0" },
    "min-answers": { type: "string", default: "2" },
    trials: { type: "string", default: "3" },
    "uncoalesced-up-to": { type: "string", default: "100" },
    out: { type: "string", default: "bench/results/embedded.json" },
  },
});

const settings = {
  levels: numbers(args.levels),
  tokensPerSecond: Number(args["tokens-per-second"]),
  maxTokens: Number(args["max-tokens"]),
  /** The model's think time before its first token, in both modes (clients subscribe meanwhile). */
  firstTokenDelayMs: Number(args["first-token-delay-ms"]),
  coalesceMs: numbers(args.coalesce),
  /** A level below this many concurrent clients runs several rounds, for enough latency samples. */
  minAnswers: Number(args["min-answers"]),
  /** Each level runs this many times, the servers interleaved; the table shows medians. */
  trials: Number(args.trials),
  /**
   * Coalescing 0 (one commit per token) is run only up to this level: above it the embedded
   * node is overloaded many times over and the phase only measures how long a backlog takes.
   */
  uncoalescedUpTo: Number(args["uncoalesced-up-to"]),
};

for (const [name, value] of Object.entries(settings)) {
  const values = Array.isArray(value) ? value : [value];
  if (values.length === 0 || values.some((v) => !Number.isFinite(v) || v < 0))
    throw new Error(`bench setting ${name}: expected non-negative numbers, got ${String(value)}`);
}

function numbers(list: string): number[] {
  return list.split(",").map((part) => Number(part.trim()));
}

let phaseCount = 0;

async function runPhase(
  fleet: ClientFleet,
  spec: EmbeddedSpec,
  concurrency: number,
  rounds: number,
  trial: number,
): Promise<Omit<PhaseRecord, "vsDirect">> {
  const emits = new EmitLog();
  const server = await startServer(spec, {
    emits,
    tokensPerSecond: settings.tokensPerSecond,
    concurrency,
    firstTokenDelayMs: settings.firstTokenDelayMs,
  });
  try {
    const clock = await fleet.clockOffset();
    const loadAverage = loadavg()[0] ?? Number.NaN;
    const cpu = process.cpuUsage();
    const elu = performance.eventLoopUtilization();
    const tag = `bench-${process.pid}-${++phaseCount}`;
    const result = await fleet.run({
      baseUrl: server.url,
      ask: server.ask,
      tag,
      concurrency,
      rounds,
      maxTokens: settings.maxTokens,
      rampMs: 0,
    });
    const used = process.cpuUsage(cpu);
    const utilization = performance.eventLoopUtilization(elu).utilization;
    const analysis = analyse(result.traces, emits, settings.maxTokens, clock.offsetMs);
    const serverCpuMs = (used.user + used.system) / 1000;
    return {
      trial,
      concurrency,
      mode: spec.mode,
      coalesceMs: spec.mode === "embedded" ? spec.coalesceMs : null,
      label: labelOf(spec),
      answers: analysis.answers,
      tokens: analysis.tokens,
      deltaFrames: analysis.deltaFrames,
      wallMs: result.wallMs,
      tokensPerSecond: analysis.tokens / (result.wallMs / 1000),
      ...deliveryFields(analysis),
      serverCpuMs,
      serverCpuMsPer1kTokens: (serverCpuMs / Math.max(1, analysis.tokens)) * 1000,
      serverEventLoopUtilization: utilization,
      clientCpuMs: result.clientCpuMs,
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
  const specs = [
    { mode: "direct" },
    ...settings.coalesceMs.map((coalesceMs) => ({ mode: "embedded" as const, coalesceMs })),
  ] satisfies EmbeddedSpec[];
  const fleet = await ClientFleet.start();
  const phases: PhaseRecord[] = [];
  try {
    // Warm the JIT, sqlite and the sockets once per server kind; these phases are not reported.
    for (const spec of specs) await runPhase(fleet, spec, 50, 1, 0);
    for (const concurrency of settings.levels) {
      const rounds = Math.max(1, Math.ceil(settings.minAnswers / concurrency));
      const levelSpecs = specs.filter((spec) => spec.mode === "direct" || spec.coalesceMs > 0 || concurrency <= settings.uncoalescedUpTo);
      for (let trial = 1; trial <= settings.trials; trial++) {
        let direct: Omit<PhaseRecord, "vsDirect"> | undefined;
        for (const spec of levelSpecs) {
          const phase = await runPhase(fleet, spec, concurrency, rounds, trial);
          direct ??= phase;
          const record: PhaseRecord = phase === direct ? phase : { ...phase, vsDirect: compare(phase, direct) };
          phases.push(record);
          process.stderr.write(
            `  ${String(concurrency).padStart(4)} × ${record.label.padEnd(24)} trial ${trial}: ${record.tokensPerSecond.toFixed(0).padStart(5)} tok/s, ` +
              `p50 ${record.latencyMs.p50.toFixed(2)} ms, p99 ${record.latencyMs.p99.toFixed(2)} ms, load ${record.loadAverage.toFixed(1)}, ${record.wrong} wrong\n`,
          );
        }
      }
    }
  } finally {
    await fleet.stop();
  }

  const results = {
    benchmark: "embedded",
    date: new Date().toISOString(),
    durationMs: Date.now() - started,
    machine: machineInfo(),
    settings: {
      ...settings,
      engine: "sqlite (LIFELINE_SQLITE_SYNC=normal, WAL) in a fresh temp data dir per phase",
      workerConcurrency: "equal to the level",
      latency:
        "model emits a token -> a client has parsed the SSE frame holding it; tokens emitted before the client's stream opened are counted as catch-up, not in the percentiles",
      throughput: "tokens received by all clients / wall time of the phase",
      serverCpu: "user+system CPU of the server process (gateway, worker, sqlite, sim) during the phase",
      summary:
        "per level and server, the median over trials; ratios are medians of per-trial ratios against the direct pipe run just before",
    },
    summary: summarize(phases),
    phases,
  };
  writeResults(args.out, results);

  console.log(
    `\nLifeline embedded vs direct pipe — ${results.date}, ${results.machine.cpus} × ${results.machine.cpuModel}, Node ${results.machine.node}`,
  );
  console.log(
    `sim ${settings.tokensPerSecond} tok/s per answer, ${settings.maxTokens} tokens per answer; latency = model emit -> client parsed\n`,
  );
  console.log(formatTable(results.summary));
  const loads = phases.map((p) => p.loadAverage);
  console.log(
    `\nmedian of ${settings.trials} trials; machine load average during the run ${Math.min(...loads).toFixed(1)}–${Math.max(...loads).toFixed(1)} (median ${median(loads).toFixed(1)}) on ${results.machine.cpus} CPUs`,
  );
  const bad = phases.reduce((n, p) => n + p.wrong, 0);
  console.log(
    `${bad === 0 ? "every answer was byte-identical to the uninterrupted sim text" : `${bad} mismatching or broken answers`}; results in ${args.out} (${((Date.now() - started) / 1000).toFixed(0)} s)`,
  );
  if (bad > 0) process.exitCode = 1;
}

await main();
