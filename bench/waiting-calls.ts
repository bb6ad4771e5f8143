/**
 * What a worker holds per model call that waits for its first token: a worker process (sqlite
 * engine, `--expose-gc`) runs N answers at once against `lifeline sim-llm` holding every answer's
 * first token back (`slow-first-token`); its memory after garbage collection, with every call
 * waiting, is compared with its memory before the first job.
 *
 *   node --import tsx bench/waiting-calls.ts [--calls 1000] [--out bench/results/waiting-calls.json]
 *     [--wire openai-compatible | anthropic]   the provider type the worker calls sim-llm through
 *     [--heap-snapshots <dir>]   also writes the worker's heap before and while waiting, for a diff
 */
import { fork, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { SqliteEngine } from "../src/engine/sqlite/sqlite-engine.ts";
import { startSimLlmProcess } from "../test/support/sim-llm-process.ts";
import { machineInfo, writeResults } from "./support/report.ts";

const { values: args } = parseArgs({
  options: {
    calls: { type: "string", default: "1000" },
    out: { type: "string", default: "bench/results/waiting-calls.json" },
    "heap-snapshots": { type: "string" },
    wire: { type: "string", default: "openai-compatible" },
  },
});
if (args.wire !== "openai-compatible" && args.wire !== "anthropic") throw new Error("--wire: openai-compatible or anthropic");
const calls = Number(args.calls);

interface Memory {
  readonly heapUsed: number;
  readonly external: number;
  readonly arrayBuffers: number;
  readonly rss: number;
}

async function openStreams(simUrl: string): Promise<number> {
  const stats = (await (await fetch(`${simUrl}/stats`)).json()) as { openStreams: number };
  return stats.openStreams;
}

function measure(worker: ChildProcess, name: string): Promise<Memory> {
  const reply = once(worker, "message") as Promise<[Memory & { type: string }]>;
  const dir = args["heap-snapshots"];
  worker.send({ type: "measure", ...(dir === undefined ? {} : { snapshot: join(dir, `${name}.heapsnapshot`) }) });
  return reply.then(([memory]) => memory);
}

const dataDir = mkdtempSync(join(tmpdir(), "lifeline-waiting-"));
const sim = await startSimLlmProcess(["--fault", "slow-first-token", "--first-token-delay-ms", "600000"]);
const configFile = join(dataDir, "models.json");
writeFileSync(
  configFile,
  JSON.stringify({
    providers: { sim: { type: args.wire, baseUrl: `${sim.url}/v1` } },
    models: { waiting: { provider: "sim", model: "sim" } },
    timeouts: { connectMs: 600_000, firstTokenMs: 600_000, idleMs: 600_000, totalMs: 600_000 },
  }),
);
const worker = fork("bench/support/waiting-worker-child.ts", [], {
  execArgv: ["--expose-gc", "--import", "tsx"],
  env: {
    ...process.env,
    LIFELINE_ENGINE: "sqlite",
    LIFELINE_DATA_DIR: dataDir,
    LIFELINE_CONFIG: configFile,
    LIFELINE_WORKER_CONCURRENCY: String(calls),
    LIFELINE_LOG_LEVEL: "warn",
  },
  stdio: ["ignore", "inherit", "inherit", "ipc"],
});
try {
  await once(worker, "message");
  await sleep(1000);
  const before = await measure(worker, "before");
  const engine = new SqliteEngine({ dataDir });
  for (let i = 0; i < calls; i++) await engine.create({ model: "waiting", messages: [{ role: "user", content: `wait ${i}` }] });
  while ((await openStreams(sim.url)) < calls) await sleep(200);
  await sleep(1000);
  const waiting = await measure(worker, "waiting");
  await engine.close();
  const per = (key: keyof Memory): number => (waiting[key] - before[key]) / calls;
  const result = {
    machine: machineInfo(),
    wire: args.wire,
    calls,
    before,
    waiting,
    perCallBytes: { heapUsed: per("heapUsed"), external: per("external"), jsTotal: per("heapUsed") + per("external"), rss: per("rss") },
  };
  writeResults(args.out, result);
  const kb = (bytes: number): string => `${(bytes / 1024).toFixed(1)} KB`;
  console.log(
    `${calls} waiting model calls: per call heap ${kb(result.perCallBytes.heapUsed)}, external ${kb(result.perCallBytes.external)}, RSS ${kb(result.perCallBytes.rss)}`,
  );
} finally {
  worker.send({ type: "stop" });
  await Promise.race([once(worker, "exit"), sleep(10_000)]);
  worker.kill("SIGKILL");
  await sim.stop();
  rmSync(dataDir, { recursive: true, force: true });
}
