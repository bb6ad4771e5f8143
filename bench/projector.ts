/**
 * What the read models cost a gateway: its projector (decision 037) catching up with a change
 * feed of finished answers, as after a burst of a thousand answers. For each engine (Redis on a
 * redis-server this bench starts on a free port; sqlite in a temporary directory), `--answers`
 * answers are created, claimed and run to their end (a `started`, `--deltas` deltas, a
 * `completed`), then a projector with a sqlite read-model store of its own follows the feed from
 * its start until every answer's row is folded whole. The figures are the process's CPU and the
 * wall time per answer. Repetitions are interleaved.
 *
 *   node --import tsx bench/projector.ts [--answers 2000] [--deltas 100] [--engines redis,sqlite]
 *     [--reps 3] [--out bench/results/projector.json]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import Database from "better-sqlite3";
import type { Engine } from "../src/engine/port.ts";
import { RedisEngine } from "../src/engine/redis/redis-engine.ts";
import { SqliteEngine } from "../src/engine/sqlite/sqlite-engine.ts";
import { Projector } from "../src/gateway/read-models/projector.ts";
import { SqliteReadModelStore } from "../src/gateway/read-models/sqlite-store.ts";
import { startStandalone, type RedisServer } from "../test/support/redis-harness.ts";
import { claimedAnswers } from "./support/claimed-answers.ts";
import { gitState, machineInfo, median, writeResults } from "./support/report.ts";

const { values: args } = parseArgs({
  options: {
    answers: { type: "string", default: "2000" },
    deltas: { type: "string", default: "100" },
    engines: { type: "string", default: "redis,sqlite" },
    reps: { type: "string", default: "3" },
    out: { type: "string", default: "bench/results/projector.json" },
  },
});
const ANSWERS = Number(args.answers);
const DELTAS = Number(args.deltas);
const REPS = Number(args.reps);
type EngineName = "redis" | "sqlite";
const ENGINES = args.engines.split(",") as EngineName[];
for (const name of ENGINES) if (name !== "redis" && name !== "sqlite") throw new Error(`unknown engine "${name}"`);
if (!(ANSWERS >= 1 && DELTAS >= 0 && REPS >= 1)) throw new Error("--answers and --reps must be at least 1, --deltas at least 0");

interface Row {
  engine: EngineName;
  rep: number;
  answers: number;
  deltasPerAnswer: number;
  /** From the projector's start to the last answer's row folded whole. */
  wallMs: number;
  /** This process's CPU (user + system) over that time, per answer. */
  cpuUsPerAnswer: number;
  wallUsPerAnswer: number;
}

/** `ANSWERS` answers run to their end on `engine`, a page of appends at a time. */
async function finishedAnswers(engine: Engine): Promise<void> {
  const claims = await claimedAnswers(engine, ANSWERS, "projected", 600_000);
  for (const claim of claims) {
    const f = claim.fence;
    const deltas = Array.from({ length: DELTAS }, (_, k) => ({ type: "delta" as const, attempt: f, text: ` token ${k}` }));
    const started = await engine.append(claim.id, f, 2, [{ type: "started", attempt: f, worker: "bench", model: "sim" }, ...deltas]);
    if (started.kind !== "appended") throw new Error(`append refused: ${started.kind}`);
    const completed = await engine.append(claim.id, f, 3 + DELTAS, [
      { type: "completed", attempt: f, finishReason: "stop", usage: { promptTokens: 1, completionTokens: DELTAS } },
    ]);
    if (completed.kind !== "appended") throw new Error(`append refused: ${completed.kind}`);
  }
}

async function measure(name: EngineName, rep: number, redis: RedisServer | undefined): Promise<Row> {
  const dir = mkdtempSync(join(tmpdir(), "lifeline-bench-projector-"));
  const engine: Engine =
    name === "redis"
      ? new RedisEngine({ target: { mode: "standalone", url: redis!.url }, prefix: `projector-${rep}` })
      : new SqliteEngine({ dataDir: join(dir, "engine") });
  const store = new SqliteReadModelStore(join(dir, "read-models"));
  const counter = new Database(join(dir, "read-models", "projections.db"), { readonly: true });
  try {
    await finishedAnswers(engine);
    const projector = new Projector({ engine, store, stuckAfterMs: 600_000, liveEveryMs: 600_000 });
    const cpuBefore = process.cpuUsage();
    const startedAt = performance.now();
    projector.start();
    const folded = counter.prepare<[], { n: number }>("SELECT count(*) AS n FROM projected_generations WHERE status = 'completed'");
    while (folded.get()!.n < ANSWERS) await sleep(5);
    const wallMs = performance.now() - startedAt;
    const cpu = process.cpuUsage(cpuBefore);
    await projector.stop();
    const row: Row = {
      engine: name,
      rep,
      answers: ANSWERS,
      deltasPerAnswer: DELTAS,
      wallMs: Math.round(wallMs),
      cpuUsPerAnswer: Math.round((cpu.user + cpu.system) / ANSWERS),
      wallUsPerAnswer: Math.round((wallMs * 1000) / ANSWERS),
    };
    console.log(
      `${name} rep ${rep}: ${ANSWERS} answers folded in ${row.wallMs} ms; per answer ${row.cpuUsPerAnswer} µs CPU, ` +
        `${row.wallUsPerAnswer} µs wall`,
    );
    return row;
  } finally {
    counter.close();
    await store.close();
    await engine.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const redis = ENGINES.includes("redis") ? await startStandalone() : undefined;
const rows: Row[] = [];
try {
  for (let rep = 1; rep <= REPS; rep++) for (const name of ENGINES) rows.push(await measure(name, rep, redis));
} finally {
  await redis?.stop();
}
const summary = ENGINES.map((engine) => {
  const of = rows.filter((r) => r.engine === engine);
  return {
    engine,
    cpuUsPerAnswer: median(of.map((r) => r.cpuUsPerAnswer)),
    wallUsPerAnswer: median(of.map((r) => r.wallUsPerAnswer)),
  };
});
console.table(summary);
writeResults(args.out, {
  benchmark: "projector",
  date: new Date().toISOString(),
  machine: machineInfo(),
  source: gitState(),
  settings: { answers: ANSWERS, deltas: DELTAS, reps: REPS, engines: ENGINES },
  summary,
  rows,
});
console.log(`wrote ${args.out}`);
