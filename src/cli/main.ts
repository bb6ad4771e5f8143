import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { ConfigError, FLAG_SPEC, OPTION_TABLE, loadConfig } from "./config.ts";
import { ModelConfigError } from "../llm/model-config.ts";
import type { NodeRoles } from "./node.ts";
import { parseSimLlmFlags, simLlmUsage } from "../sim-llm/flags.ts";
import { SimLlmOptionsError } from "../sim-llm/options.ts";
import { startSimLlm } from "../sim-llm/server.ts";
import { runUntilSignal } from "./until-signal.ts";
import { TracingConfigError, readTracingSettings } from "../observability/tracing-config.ts";

const ROLES: Record<string, NodeRoles> = {
  start: { gateway: true, worker: true },
  gateway: { gateway: true, worker: false },
  worker: { gateway: false, worker: true },
};

function usage(): string {
  const width = Math.max(...OPTION_TABLE.map((o) => o.flag.length + o.env.length));
  const lines = OPTION_TABLE.map((o) => `  ${`${o.flag}, ${o.env}`.padEnd(width + 4)}${o.doc} (default: ${o.default || "—"})`);
  return [
    "Usage: lifeline <command> [options]",
    "",
    "Commands:",
    "  start     gateway and worker in one process (the embedded mode)",
    "  gateway   the HTTP API only; workers run elsewhere on the same engine",
    "  worker    runs answers only",
    "  sim-llm   the simulator over OpenAI and Anthropic wire formats, with faults (sim-llm --help)",
    "  keys      API keys: create, list, revoke (keys --help)",
    "  replay    a generation's log replayed: its calls, failures, takeovers and text (replay --help)",
    "  projections  rebuild: the read models behind /ops rebuilt from the logs (projections --help)",
    "  chaos     kills workers and the gateway mid-answer on this machine and checks every answer (chaos --help)",
    "  help      this text",
    "  version   the version",
    "",
    "Options (flag, environment variable):",
    ...lines,
  ].join("\n");
}

/** `lifeline <command> [flags]`. Exits 2 on a usage or configuration error. */
export async function main(argv: readonly string[]): Promise<void> {
  const [command = "help", ...rest] = argv;
  if (command === "help" || command === "--help" || command === "-h") {
    process.stdout.write(`${usage()}\n`);
    return;
  }
  if (command === "version" || command === "--version") {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
    process.stdout.write(`${pkg.version}\n`);
    return;
  }
  if (command === "sim-llm") return simLlm(rest);
  if (command === "replay") return replayCommand(rest);
  if (command === "keys") return keysCommandLine(rest);
  if (command === "projections") return projectionsCommandLine(rest);
  if (command === "chaos") return chaosCommand(rest);
  const roles = ROLES[command];
  if (!roles) return fail(`unknown command "${command}"`);

  let flags: Record<string, string | undefined>;
  try {
    flags = parseArgs({ args: [...rest], options: FLAG_SPEC, strict: true, allowPositionals: false }).values as Record<
      string,
      string | undefined
    >;
  } catch (error) {
    return fail((error as Error).message);
  }
  let config;
  try {
    config = loadConfig(process.env, flags);
  } catch (error) {
    if (error instanceof ConfigError) return fail(error.message);
    throw error;
  }
  if (config.engine === "memory" && command !== "start") {
    return fail("the memory engine lives in one process; `gateway` and `worker` need a shared engine such as sqlite");
  }

  // Traces are off unless the standard OTEL_* variables ask for them (decision 040).
  let traceSettings;
  try {
    traceSettings = readTracingSettings(process.env, command === "start" ? "lifeline" : `lifeline-${command}`);
  } catch (error) {
    if (error instanceof TracingConfigError) return fail(error.message);
    throw error;
  }

  // Loaded here, so `help`, `version` and `sim-llm` do not load the engines, gateway and worker.
  const { startNode } = await import("./node.ts");
  const warnTraces = (message: string) => process.stderr.write(`lifeline: traces: ${message}\n`);
  const tracing = traceSettings && (await (await import("../observability/tracing.ts")).startTracing(traceSettings, warnTraces));
  let node;
  try {
    node = await startNode(config, roles, { onFatal: (error) => running.fail(error) });
  } catch (error) {
    await tracing?.shutdown().catch(() => undefined);
    if (error instanceof ModelConfigError) return fail(error.message);
    // The port is taken, the engine did not answer within its retry budget, …
    process.stderr.write(`lifeline: could not start: ${(error as Error).message}\n`);
    process.exitCode = 1;
    return;
  }
  const started = node;
  const running = runUntilSignal(command, async () => {
    started.logger.info("shutting down");
    await started.stop();
    // The spans of the last answers go out before the process ends.
    await tracing?.shutdown().catch((error: unknown) => started.logger.warn({ err: (error as Error).message }, "traces not flushed"));
  });
  if (node.url) {
    process.stderr.write(
      `Lifeline is ready at ${node.url}/ (engine ${config.engine}${config.engine === "sqlite" ? `, data in ${config.dataDir}` : ""})\n`,
    );
  } else {
    const metrics = node.metricsUrl ? `, metrics at ${node.metricsUrl}/metrics` : "";
    process.stderr.write(`Lifeline worker ${config.workerName} is running (engine ${config.engine}${metrics})\n`);
  }
}

/** `lifeline sim-llm [flags]`: serves until SIGTERM or SIGINT. */
async function simLlm(args: readonly string[]): Promise<void> {
  if (args.includes("--help") || args.includes("-h")) {
    process.stdout.write(`${simLlmUsage()}\n`);
    return;
  }
  let options;
  try {
    options = parseSimLlmFlags(args, process.env);
  } catch (error) {
    if (error instanceof SimLlmOptionsError) return fail(error.message);
    throw error;
  }
  let sim;
  try {
    sim = await startSimLlm(options);
  } catch (error) {
    process.stderr.write(`lifeline: sim-llm cannot listen on ${options.host}:${options.port}: ${(error as Error).message}\n`);
    process.exitCode = 1;
    return;
  }
  process.stderr.write(`sim-llm listening at ${sim.url} (fault ${options.fault})\n`);
  runUntilSignal("sim-llm", () => sim.close());
}

/** `lifeline replay <id>`: loaded on demand, like the engines it opens. */
async function replayCommand(args: readonly string[]): Promise<void> {
  const { REPLAY_USAGE, ReplayUsageError, replay } = await import("./replay.ts");
  if (args.includes("--help") || args.includes("-h")) {
    process.stdout.write(`${REPLAY_USAGE}\n`);
    return;
  }
  try {
    process.exitCode = await replay(
      args,
      (text) => process.stdout.write(text),
      (text) => process.stderr.write(text),
    );
  } catch (error) {
    if (!(error instanceof ReplayUsageError)) throw error;
    process.stderr.write(`lifeline: ${error.message}\n\n${REPLAY_USAGE}\n`);
    process.exitCode = 2;
  }
}

/** `lifeline keys …`: loaded on demand, like the engines it opens. */
async function keysCommandLine(args: readonly string[]): Promise<void> {
  const { KEYS_USAGE, KeysUsageError, keysCommand } = await import("./keys.ts");
  if (args.includes("--help") || args.includes("-h")) {
    process.stdout.write(`${KEYS_USAGE}\n`);
    return;
  }
  try {
    process.exitCode = await keysCommand(
      args,
      (text) => process.stdout.write(text),
      (text) => process.stderr.write(text),
    );
  } catch (error) {
    if (!(error instanceof KeysUsageError)) throw error;
    process.stderr.write(`lifeline: ${error.message}\n\n${KEYS_USAGE}\n`);
    process.exitCode = 2;
  }
}

/** `lifeline projections rebuild`: loaded on demand, like the engines it opens. */
async function projectionsCommandLine(args: readonly string[]): Promise<void> {
  const { PROJECTIONS_USAGE, ProjectionsUsageError, projectionsCommand } = await import("./projections.ts");
  if (args.includes("--help") || args.includes("-h")) {
    process.stdout.write(`${PROJECTIONS_USAGE}\n`);
    return;
  }
  try {
    process.exitCode = await projectionsCommand(
      args,
      (text) => process.stdout.write(text),
      (text) => process.stderr.write(text),
    );
  } catch (error) {
    if (!(error instanceof ProjectionsUsageError)) throw error;
    process.stderr.write(`lifeline: ${error.message}\n\n${PROJECTIONS_USAGE}\n`);
    process.exitCode = 2;
  }
}

/** `lifeline chaos`: a small deployment under fire, and the check of every answer. */
async function chaosCommand(args: readonly string[]): Promise<void> {
  const { CHAOS_USAGE, ChaosUsageError, parseChaosFlags } = await import("./chaos.ts");
  if (args.includes("--help") || args.includes("-h")) {
    process.stdout.write(`${CHAOS_USAGE}\n`);
    return;
  }
  let parsed;
  try {
    parsed = parseChaosFlags(args);
  } catch (error) {
    if (!(error instanceof ChaosUsageError)) throw error;
    process.stderr.write(`lifeline: ${error.message}\n\n${CHAOS_USAGE}\n`);
    process.exitCode = 2;
    return;
  }
  const { renderChaosReport, runChaos } = await import("../chaos/run-chaos.ts");
  const { options, json } = parsed;
  process.stderr.write(`lifeline chaos: seed ${options.seed}\n`);
  try {
    const report = await runChaos(options, (line) => process.stderr.write(`  ${line}\n`));
    process.stdout.write(json ? `${JSON.stringify(report, null, 2)}\n` : renderChaosReport(report));
    process.exitCode = report.exact === report.answers ? 0 : 1;
  } catch (error) {
    process.stderr.write(`lifeline chaos: ${(error as Error).message}\n`);
    process.exitCode = 1;
  }
}

function fail(message: string): void {
  process.stderr.write(`lifeline: ${message}\n\nRun \`lifeline help\` for the commands and options.\n`);
  process.exitCode = 2;
}
