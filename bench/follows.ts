/**
 * Open follows: what an idle follow costs a gateway, and how fast thousands of them open.
 *
 * For each engine (Redis on a redis-server this bench starts on a free port; sqlite in a temporary
 * directory) and each case, a fresh gateway (no worker, `--expose-gc`) in a child process gets
 * generations that never progress past `created`; a client process opens N follows on them with
 * at most `--window` still waiting for their first entry, and holds them. The gateway's memory
 * after full collections, before and after, divided by N, is the cost of one idle follow; the time
 * from the first request to the last first entry is the time to open them all. Closing them all
 * at once and measuring again shows what a close costs the gateway and what stays behind.
 *
 * Cases are `<transport>:<follows per generation>`: `sse:1` is one reader per answer, `sse:100`
 * a hundred readers of each answer, `ws:1` one subscription per answer with `--subs-per-socket`
 * subscriptions multiplexed on each WebSocket. The engine `floor` is a bare `node:http` server
 * holding event-stream responses open, `sse:1` only: what any Node server pays per open response.
 *
 *   node --import tsx bench/follows.ts [--follows 5000] [--engines floor,redis,sqlite]
 *     [--cases sse:1,sse:100,ws:1] [--trials 1] [--window 500] [--subs-per-socket 100]
 *     [--profile] [--out bench/results/follows.json]
 *
 * `--profile` samples the gateway's CPU while the follows open and writes where the samples fell
 * (by package or folder, and by function) into each row, and the whole profile beside the output
 * (`<out>-<engine>-sse1-<trial>.cpuprofile`, for `bench/support/profile-summary.ts`).
 */
import { execFileSync, fork, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { routes } from "../src/core/routes.ts";
import { startStandalone, type RedisServer } from "../test/support/redis-harness.ts";
import type {
  FollowTransport,
  FromClients,
  FromGateway,
  MemorySample,
  ProfileShares,
  ToClients,
  ToGateway,
} from "./support/follows-protocol.ts";
import { machineInfo, median, writeResults } from "./support/report.ts";

const { values } = parseArgs({
  options: {
    follows: { type: "string", default: "5000" },
    engines: { type: "string", default: "floor,redis,sqlite" },
    cases: { type: "string", default: "sse:1,sse:100,ws:1" },
    trials: { type: "string", default: "1" },
    window: { type: "string", default: "500" },
    "subs-per-socket": { type: "string", default: "100" },
    "settle-ms": { type: "string", default: "1000" },
    profile: { type: "boolean", default: false },
    out: { type: "string", default: "bench/results/follows.json" },
  },
});
const FOLLOWS = Number(values.follows);
type EngineName = "floor" | "redis" | "sqlite";
const ENGINES = values.engines.split(",") as EngineName[];
for (const engine of ENGINES) if (!["floor", "redis", "sqlite"].includes(engine)) throw new Error(`unknown engine "${engine}"`);
const CASES = values.cases.split(",").map((c) => {
  const [transport, perGeneration] = c.split(":");
  if ((transport !== "sse" && transport !== "ws") || !(Number(perGeneration) >= 1)) throw new Error(`bad case "${c}"`);
  return { transport: transport as FollowTransport, perGeneration: Number(perGeneration) };
});
type Case = (typeof CASES)[number];
const TRIALS = Number(values.trials);
const WINDOW = Number(values.window);
const SUBS_PER_SOCKET = Number(values["subs-per-socket"]);
const SETTLE_MS = Number(values["settle-ms"]);
const PROFILE = values.profile;
/** Follows opened and closed before the first measurement, so lazily built pools and code are warm. */
const WARM_UP = Math.min(500, FOLLOWS);

interface Row {
  engine: EngineName;
  case: string;
  trial: number;
  follows: number;
  failures: number;
  /** From the first request to the last follow's first entry. */
  openMs: number;
  /** CPU per follow opened, µs: the gateway's and the clients'. */
  gatewayCpuUsPerOpen: number;
  clientCpuUsPerOpen: number;
  /** The gateway's CPU per follow while the clients closed them all at once (and a settling second after), µs. */
  gatewayCpuUsPerClose: number;
  /** Per open follow, bytes: heap used + external memory, and resident set, after full collections. */
  heapPerFollow: number;
  rssPerFollow: number;
  /** Per follow, bytes of heap + external still held a moment after every follow closed. */
  heapLeftPerFollow: number;
  /** On Redis: the commands Redis ran while the follows opened, per follow (`INFO commandstats`). */
  redisCallsPerOpen?: Record<string, number>;
  /** On Redis: the reads Redis served while the follows opened, per follow (`total_reads_processed`): the gateway's writes to it. */
  redisReadsPerOpen?: number;
  /** With `--profile`: where the gateway's CPU samples fell while the follows opened. */
  profile?: { byPlace: ProfileShares; byFunction: ProfileShares };
  idle: MemorySample;
  open: MemorySample;
  closed: MemorySample;
}

const here = dirname(fileURLToPath(import.meta.url));

/** A child process that answers IPC messages; `ask` waits for the first reply that matches. */
class Child<In, Out extends { type: string }> {
  readonly #child: ChildProcess;
  readonly #listeners = new Set<(message: Out) => void>();

  constructor(child: ChildProcess) {
    this.#child = child;
    child.on("message", (message: Out) => {
      for (const listener of [...this.#listeners]) listener(message);
    });
  }

  next(match: (m: Out) => boolean): Promise<Out> {
    return new Promise((resolve, reject) => {
      const onExit = (code: number | null): void => reject(new Error(`child exited with ${code}`));
      const listener = (message: Out): void => {
        if (message.type === "error") reject(new Error((message as unknown as { message: string }).message));
        else if (!match(message)) return;
        this.#listeners.delete(listener);
        this.#child.off("exit", onExit);
        resolve(message);
      };
      this.#listeners.add(listener);
      this.#child.once("exit", onExit);
    });
  }

  ask(message: In, match: (m: Out) => boolean): Promise<Out> {
    const reply = this.next(match);
    this.#child.send(message as object);
    return reply;
  }

  async stop(message: In): Promise<void> {
    if (this.#child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.#child.once("exit", resolve));
    this.#child.send(message as object);
    await exited;
  }
}

type Gateway = Child<ToGateway, FromGateway>;

async function startGateway(env: Record<string, string>): Promise<{ url: string; gateway: Gateway }> {
  const proc = fork(join(here, "support/follows-gateway-child.ts"), [], {
    execArgv: [...process.execArgv, "--expose-gc"],
    env: { ...process.env, ...env, LIFELINE_LOG_LEVEL: "warn" },
    stdio: "inherit",
  });
  const gateway: Gateway = new Child(proc);
  const ready = await gateway.next((m) => m.type === "ready");
  return { url: ready.type === "ready" ? ready.url : "", gateway };
}

let seq = 0;
async function memory(gateway: Gateway): Promise<MemorySample> {
  const n = ++seq;
  const reply = await gateway.ask({ type: "measure", seq: n }, (m) => m.type === "memory" && m.seq === n);
  if (reply.type !== "memory") throw new Error("no memory sample");
  return reply.sample;
}

function ask<T extends FromGateway["type"]>(gateway: Gateway, message: ToGateway & { seq: number }, type: T): Promise<FromGateway> {
  return gateway.ask(message, (m) => m.type === type && "seq" in m && m.seq === message.seq);
}

async function cpuMs(gateway: Gateway): Promise<number> {
  const n = ++seq;
  const reply = await gateway.ask({ type: "cpu", seq: n }, (m) => m.type === "cpu" && m.seq === n);
  if (reply.type !== "cpu") throw new Error("no CPU sample");
  return reply.cpuMs;
}

/** Generations that stay at `created` (no worker runs), made over the API 64 at a time. */
async function createGenerations(url: string, count: number, tag: string): Promise<string[]> {
  const ids: string[] = new Array<string>(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      for (let i = next++; i < count; i = next++) {
        const res = await fetch(new URL(routes.generations(), url), {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ model: "sim", messages: [{ role: "user", content: `${tag} ${i}` }], max_tokens: 10 }),
        });
        if (res.status !== 201) throw new Error(`POST answered ${res.status}: ${await res.text()}`);
        ids[i] = ((await res.json()) as { id: string }).id;
      }
    }),
  );
  return ids;
}

function followIds(generations: readonly string[], perGeneration: number, follows: number): string[] {
  return Array.from({ length: follows }, (_, i) => generations[Math.floor(i / perGeneration) % generations.length]!);
}

async function runCase(
  clients: Child<ToClients, FromClients>,
  env: Record<string, string>,
  engine: EngineName,
  c: Case,
  trial: number,
  redisUrl?: string,
): Promise<Row> {
  const { url, gateway } = await startGateway(env);
  const admin = redisUrl === undefined ? undefined : new Redis(redisUrl);
  try {
    const generations = await createGenerations(url, Math.ceil(FOLLOWS / c.perGeneration), `follows ${engine} ${trial}`);
    const open = async (ids: string[]): Promise<Extract<FromClients, { type: "opened" }>> => {
      const plan = { baseUrl: url, transport: c.transport, ids, window: WINDOW, subsPerSocket: SUBS_PER_SOCKET };
      const reply = await clients.ask({ type: "open", plan }, (m) => m.type === "opened");
      if (reply.type !== "opened") throw new Error("not opened");
      return reply;
    };
    const close = (): Promise<FromClients> => clients.ask({ type: "close" }, (m) => m.type === "closed");

    await open(followIds(generations, c.perGeneration, WARM_UP));
    await close();
    await sleep(SETTLE_MS);
    const idle = await memory(gateway);
    if (PROFILE) await ask(gateway, { type: "profileStart", seq: ++seq }, "profiling");
    const callsBefore = admin && (await commandCalls(admin));
    const cpuBefore = await cpuMs(gateway);
    const opened = await open(followIds(generations, c.perGeneration, FOLLOWS));
    const cpuAfter = await cpuMs(gateway);
    const callsAfter = admin && (await commandCalls(admin));
    const profile = PROFILE
      ? await ask(
          gateway,
          {
            type: "profileStop",
            seq: ++seq,
            file: `${values.out.replace(/\.json$/, "")}-${engine}-${c.transport}${c.perGeneration}-${trial}.cpuprofile`,
          },
          "profile",
        )
      : undefined;
    await sleep(SETTLE_MS);
    const held = await memory(gateway);
    // Closing them all at once: every client ends its request together, as after a network cut.
    const cpuBeforeClose = await cpuMs(gateway);
    await close();
    await sleep(SETTLE_MS);
    const cpuAfterClose = await cpuMs(gateway);
    const closed = await memory(gateway);
    const n = Math.max(1, opened.follows);
    const redisCallsPerOpen =
      callsBefore && callsAfter
        ? Object.fromEntries(
            Object.entries(callsAfter)
              .map(([command, calls]) => [command, Number(((calls - (callsBefore[command] ?? 0)) / n).toFixed(3))] as const)
              .filter(([command, perOpen]) => perOpen > 0 && command !== "info" && command !== READS),
          )
        : undefined;
    const heap = (s: MemorySample): number => s.heapUsed + s.external;
    const row: Row = {
      engine,
      case: `${c.transport}:${c.perGeneration}`,
      trial,
      follows: opened.follows,
      failures: opened.failures,
      openMs: Math.round(opened.ms),
      gatewayCpuUsPerOpen: Math.round(((cpuAfter - cpuBefore) * 1000) / n),
      gatewayCpuUsPerClose: Math.round(((cpuAfterClose - cpuBeforeClose) * 1000) / n),
      clientCpuUsPerOpen: Math.round((opened.cpuMs * 1000) / n),
      heapPerFollow: Math.round((heap(held) - heap(idle)) / n),
      rssPerFollow: Math.round((held.rss - idle.rss) / n),
      heapLeftPerFollow: Math.round((heap(closed) - heap(idle)) / n),
      ...(redisCallsPerOpen ? { redisCallsPerOpen } : {}),
      ...(callsBefore && callsAfter ? { redisReadsPerOpen: Number(((callsAfter[READS]! - callsBefore[READS]!) / n).toFixed(3)) } : {}),
      ...(profile?.type === "profile" ? { profile: { byPlace: profile.byPlace, byFunction: profile.byFunction } } : {}),
      idle,
      open: held,
      closed,
    };
    const failed = opened.firstFailure ? ` (first: ${opened.firstFailure})` : "";
    const commands = redisCallsPerOpen
      ? `; Redis commands per open: ${Object.entries(redisCallsPerOpen)
          .map(([command, perOpen]) => `${command} ${perOpen}`)
          .join(", ")}; Redis reads per open ${row.redisReadsPerOpen}`
      : "";
    console.log(
      `${engine} ${row.case} trial ${trial}: ${row.follows} follows in ${row.openMs} ms ` +
        `(CPU per open: gateway ${row.gatewayCpuUsPerOpen} µs, clients ${row.clientCpuUsPerOpen} µs; per close: gateway ${row.gatewayCpuUsPerClose} µs); ` +
        `${kb(row.heapPerFollow)} KB heap and ${kb(row.rssPerFollow)} KB RSS each, ` +
        `${kb(row.heapLeftPerFollow)} KB left after closing; ${row.failures} failed${failed}${commands}`,
    );
    return row;
  } finally {
    admin?.disconnect();
    await gateway.stop({ type: "stop" });
  }
}

/** Calls of each command Redis ran so far, from `INFO commandstats`, and the reads it served (`reads`). */
async function commandCalls(admin: Redis): Promise<Record<string, number>> {
  const calls: Record<string, number> = {};
  for (const [, command, count] of (await admin.info("commandstats")).matchAll(/cmdstat_([^:]+):calls=(\d+)/g))
    calls[command!] = Number(count);
  calls[READS] = Number(/total_reads_processed:(\d+)/.exec(await admin.info("stats"))?.[1] ?? NaN);
  return calls;
}
const READS = "(reads)";

const kb = (bytes: number): string => (bytes / 1024).toFixed(1);

function redisVersion(): string {
  try {
    return /v=(\S+)/.exec(execFileSync("redis-server", ["--version"], { encoding: "utf8" }))?.[1] ?? "unknown";
  } catch {
    return "unknown";
  }
}

const clients = new Child<ToClients, FromClients>(fork(join(here, "support/follows-client-child.ts"), [], { stdio: "inherit" }));
await clients.next((m) => m.type === "ready");
const startedAt = new Date().toISOString();
const loadAtStart = loadavg();
const rows: Row[] = [];
let redis: RedisServer | undefined;
try {
  for (let trial = 1; trial <= TRIALS; trial++) {
    for (const engine of ENGINES) {
      for (const c of CASES) {
        if (engine === "floor") {
          if (c.transport === "sse" && c.perGeneration === 1) rows.push(await runCase(clients, { FOLLOWS_FLOOR: "1" }, engine, c, trial));
        } else {
          // A data dir of its own: the sqlite engine's files, or with Redis the read models (in
          // `.lifeline` by default, where those of earlier runs would be looked at too).
          const dir = mkdtempSync(join(tmpdir(), "lifeline-follows-"));
          try {
            if (engine === "redis") {
              redis ??= await startStandalone();
              const prefix = `follows${trial}${c.transport}${c.perGeneration}`;
              const env = {
                LIFELINE_ENGINE: "redis",
                LIFELINE_REDIS_URL: redis.url,
                LIFELINE_REDIS_PREFIX: prefix,
                LIFELINE_DATA_DIR: dir,
              };
              rows.push(await runCase(clients, env, engine, c, trial, redis.url));
            } else {
              rows.push(await runCase(clients, { LIFELINE_ENGINE: "sqlite", LIFELINE_DATA_DIR: dir }, engine, c, trial));
            }
          } finally {
            rmSync(dir, { recursive: true, force: true });
          }
        }
      }
    }
  }
} finally {
  await clients.stop({ type: "exit" });
  await redis?.stop();
}

const summary = [...new Set(rows.map((r) => `${r.engine} ${r.case}`))].map((key) => {
  const trials = rows.filter((r) => `${r.engine} ${r.case}` === key);
  const med = (pick: (r: Row) => number): number => median(trials.map(pick));
  return {
    engine: trials[0]!.engine,
    case: trials[0]!.case,
    openMs: med((r) => r.openMs),
    gatewayCpuUsPerOpen: med((r) => r.gatewayCpuUsPerOpen),
    clientCpuUsPerOpen: med((r) => r.clientCpuUsPerOpen),
    heapKBPerFollow: Number(kb(med((r) => r.heapPerFollow))),
    rssKBPerFollow: Number(kb(med((r) => r.rssPerFollow))),
    heapLeftKBPerFollow: Number(kb(med((r) => r.heapLeftPerFollow))),
    failures: trials.reduce((sum, r) => sum + r.failures, 0),
  };
});
console.table(summary);

writeResults(values.out, {
  startedAt,
  command: `node --import tsx bench/follows.ts ${process.argv.slice(2).join(" ")}`.trim(),
  machine: { ...machineInfo(), redis: redisVersion(), loadAverageAtStart: loadAtStart, loadAverageAtEnd: loadavg() },
  options: { follows: FOLLOWS, trials: TRIALS, window: WINDOW, subsPerSocket: SUBS_PER_SOCKET, settleMs: SETTLE_MS, warmUp: WARM_UP },
  summary,
  rows,
});
console.log(`wrote ${values.out}`);
