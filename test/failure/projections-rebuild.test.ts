import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LifelineProcess } from "../../src/chaos/lifeline-process.ts";
import type { Entry } from "../../src/core/entries.ts";
import { routes } from "../../src/core/routes.ts";
import { openPostgresReadModels } from "../../src/gateway/read-models/postgres-store.ts";
import { readModelFileOf } from "../../src/gateway/read-models/open-store.ts";
import { SqliteReadModelStore } from "../../src/gateway/read-models/sqlite-store.ts";
import type { ReadModelStore } from "../../src/projections/store/port.ts";
import { useLifelineProcesses } from "../support/lifeline-processes.ts";
import { postgresAvailable, requirePostgres, startPostgres, type PostgresServer } from "../support/postgres-harness.ts";
import { redisAvailable, requireRedis, startStandalone, type RedisServer } from "../support/redis-harness.ts";
import { runLifeline } from "../support/run-cli.ts";
import { simRequest } from "../support/sim-answer.ts";
import { startSimLlmProcess, type SimLlmProcess } from "../support/sim-llm-process.ts";
import { entriesOf, readEvents, startGeneration } from "../support/sse-client.ts";
import { tempDir } from "../support/temp-dir.ts";
import { until } from "../support/waits.ts";

/**
 * The read models of a mixed workload — answers completed, failed, cancelled, taken over after a
 * worker is SIGKILLed mid-answer, and retried after a model error — projected live by the gateway,
 * then dropped and rebuilt from the logs by `lifeline projections rebuild`: the rebuilt models
 * equal the live ones, and both equal counts this test computes on its own from the logs read
 * through the native HTTP API. On Redis (a gateway and worker processes) with the read models in
 * sqlite and in PostgreSQL, and on sqlite (the same processes sharing one data file).
 */

interface Independent {
  status: string;
  model: string;
  provider: string;
  attempts: number;
  retries: number;
  takeovers: number;
  worker: string | undefined;
  errorCode: string | undefined;
  lastOffset: number;
  parts: Map<string, { attempts: number; takeovers: number; finished: number }>;
}

/** What the logs say, counted here without the projections' code. */
function countLog(entries: readonly Entry[]): Independent {
  const created = entries[0];
  const last = entries.at(-1)!;
  const out: Independent = {
    status: ["completed", "failed", "cancelled"].includes(last.type)
      ? last.type
      : entries.some((e) => e.type === "started")
        ? "running"
        : "queued",
    model: created?.type === "created" ? created.request.model : "",
    provider: "",
    attempts: 0,
    retries: 0,
    takeovers: 0,
    worker: undefined,
    errorCode: last.type === "failed" ? last.error.code : undefined,
    lastOffset: last.offset,
    parts: new Map(),
  };
  let fence = 0;
  for (const e of entries) {
    if (e.type === "retrying") out.retries += 1;
    if (e.type !== "started") continue;
    const part = out.parts.get(e.worker) ?? { attempts: 0, takeovers: 0, finished: 0 };
    part.attempts += 1;
    if (out.attempts > 0 && e.attempt > fence) {
      out.takeovers += 1;
      part.takeovers += 1;
    }
    fence = e.attempt;
    out.attempts += 1;
    out.worker = e.worker;
    out.provider = e.model;
    out.parts.set(e.worker, part);
  }
  if ((last.type === "completed" || last.type === "failed") && out.worker) out.parts.get(out.worker)!.finished += 1;
  return out;
}

const DEPLOYMENTS = ["redis", "redis+postgres", "sqlite"] as const;

for (const kind of DEPLOYMENTS) {
  describe(`projections rebuilt from the logs of a mixed workload: ${kind}`, () => {
    const launch = useLifelineProcesses();
    const dir = tempDir("lifeline-rebuild-");
    let redis: RedisServer | undefined;
    let postgres: PostgresServer | undefined;
    let sim: SimLlmProcess | undefined;
    let env: Record<string, string>;

    beforeAll(async () => {
      const onRedis = kind !== "sqlite";
      if ((onRedis && !redisAvailable()) || (kind === "redis+postgres" && !postgresAvailable())) return;
      [redis, postgres, sim] = await Promise.all([
        onRedis ? startStandalone() : Promise.resolve(undefined),
        kind === "redis+postgres" ? startPostgres() : Promise.resolve(undefined),
        // The first two calls fail with 503 (retried), then it answers.
        startSimLlmProcess(["--fault", "error", "--fault-status", "503", "--fault-count", "2", "--tokens-per-second", "max"]),
      ]);
      const config = join(dir.path, "models.json");
      writeFileSync(
        config,
        JSON.stringify({
          providers: {
            remote: { type: "openai-compatible", baseUrl: `${sim.url}/v1` },
            refusing: { type: "openai-compatible", baseUrl: `${sim.url}/v1`, headers: { "x-sim-fault": "error;status=400" } },
          },
          models: { flaky: { provider: "remote", model: "sim" }, refused: { provider: "refusing", model: "sim" } },
          retry: { maxAttempts: 4, baseDelayMs: 10, maxDelayMs: 50 },
        }),
      );
      env = {
        LIFELINE_CONFIG: config,
        LIFELINE_DATA_DIR: join(dir.path, "data"),
        LIFELINE_LEASE_MS: "1500",
        LIFELINE_SIM_TOKENS_PER_SECOND: "20",
        ...(onRedis
          ? { LIFELINE_ENGINE: "redis", LIFELINE_REDIS_URL: redis!.url, LIFELINE_REDIS_PREFIX: `rebuild${process.pid}` }
          : { LIFELINE_ENGINE: "sqlite" }),
        // With a PostgreSQL URL, the read models (and the archive) are there, shared by every gateway.
        ...(postgres ? { LIFELINE_POSTGRES_URL: postgres.url } : {}),
      };
    }, 120_000);
    afterAll(async () => {
      await Promise.all([sim?.stop(), redis?.stop(), postgres?.stop()]);
      dir.remove();
    });

    it("the rebuilt read models equal the live ones and the counts of the logs", async (ctx) => {
      if (kind !== "sqlite") requireRedis(ctx);
      if (kind === "redis+postgres") requirePostgres(ctx);
      const gateway = await launch("gateway", env);
      const doomed = await launch("worker", { ...env, LIFELINE_WORKER_NAME: "doomed" });
      const url = gateway.url;
      const generation = async (id: string) =>
        (await (await fetch(`${url}${routes.generation(id)}`)).json()) as { status: string; text: string };

      // Taken over: the first worker is SIGKILLed mid-answer; the second finishes it after the lease.
      const takenOver = await startGeneration(url, simRequest("taken over", { max_tokens: 60 }));
      await until(async () => (await generation(takenOver)).text.length > 0, 60_000, "the answer streaming on the doomed worker");
      await doomed.kill();
      // The survivor writes at ten times the pace: what it takes over and the rest end sooner.
      await launch("worker", { ...env, LIFELINE_WORKER_NAME: "survivor", LIFELINE_SIM_TOKENS_PER_SECOND: "200" });

      const ids = [takenOver];
      for (let i = 0; i < 3; i++) ids.push(await startGeneration(url, simRequest(`completed ${i}`, { max_tokens: 6 })));
      ids.push(await startGeneration(url, { model: "flaky", messages: [{ role: "user", content: "retried" }], max_tokens: 6 }));
      ids.push(await startGeneration(url, { model: "refused", messages: [{ role: "user", content: "fails" }], max_tokens: 6 }));
      // 20 s at the survivor's 200 tokens a second: still running when it is cancelled.
      const cancelled = await startGeneration(url, simRequest("cancelled", { max_tokens: 4000 }));
      ids.push(cancelled);
      await until(async () => (await generation(cancelled)).text.length > 0, 60_000, "the answer to cancel running");
      expect((await fetch(`${url}${routes.cancel(cancelled)}`, { method: "POST" })).status).toBe(202);
      await until(
        async () => (await Promise.all(ids.map(generation))).every((g) => ["completed", "failed", "cancelled"].includes(g.status)),
        120_000,
        "every answer ended",
      );

      // The logs through the native API, counted here.
      const counted = new Map<string, Independent>();
      for (const id of ids) counted.set(id, countLog(entriesOf((await readEvents(url, id)).messages)));
      const statuses = [...counted.values()].map((c) => c.status);
      expect(statuses.filter((s) => s === "completed").length).toBeGreaterThanOrEqual(5);
      expect(statuses).toContain("failed");
      expect(statuses).toContain("cancelled");
      expect(counted.get(takenOver)!.takeovers).toBe(1);
      expect([...counted.values()].some((c) => c.retries > 0)).toBe(true);

      // The live projection catches up with every log.
      const store: ReadModelStore = postgres
        ? await openPostgresReadModels({ url: postgres.url })
        : new SqliteReadModelStore(
            env.LIFELINE_DATA_DIR!,
            readModelFileOf({ engine: env.LIFELINE_ENGINE!, redisPrefix: env.LIFELINE_REDIS_PREFIX ?? "ll" }),
          );
      try {
        await until(
          async () => {
            const rows = new Map((await store.all()).map((g) => [g.summary.id, g.summary.lastOffset]));
            return ids.every((id) => rows.get(id) === counted.get(id)!.lastOffset);
          },
          60_000,
          "the live read models applied every log to its end",
        );
        const live = { all: await store.all(), models: await store.models(), workers: await store.workers() };

        const run = await runLifeline(["projections", "rebuild", "--json"], { ...env });
        expect(run.status, run.stderr).toBe(0);
        expect(JSON.parse(run.stdout)).toMatchObject({ store: postgres ? "postgres" : "sqlite", generations: ids.length });
        const rebuilt = { all: await store.all(), models: await store.models(), workers: await store.workers() };
        expect(rebuilt).toEqual(live);

        // Both equal what the logs say.
        for (const { summary: s, provider, workers } of rebuilt.all) {
          const c = counted.get(s.id)!;
          expect({
            id: s.id,
            status: s.status,
            model: s.model,
            provider,
            attempts: s.attempts,
            retries: s.retries,
            takeovers: s.takeovers,
          }).toEqual({
            id: s.id,
            status: c.status,
            model: c.model,
            provider: c.provider,
            attempts: c.attempts,
            retries: c.retries,
            takeovers: c.takeovers,
          });
          expect({ worker: s.worker, errorCode: s.errorCode, lastOffset: s.lastOffset }).toEqual({
            worker: c.worker,
            errorCode: c.errorCode,
            lastOffset: c.lastOffset,
          });
          expect(
            Object.fromEntries(workers.map((w) => [w.worker, { attempts: w.attempts, takeovers: w.takeovers, finished: w.finished }])),
          ).toEqual(Object.fromEntries(c.parts));
        }
        const byModel = new Map<string, { answers: number; completed: number; failed: number; retries: number }>();
        const byWorker = new Map<string, { attempts: number; takeovers: number; finished: number }>();
        for (const c of counted.values()) {
          const key = `${c.model}/${c.provider}`;
          const m = byModel.get(key) ?? { answers: 0, completed: 0, failed: 0, retries: 0 };
          m.answers += 1;
          if (c.status === "completed") m.completed += 1;
          if (c.status === "failed") m.failed += 1;
          m.retries += c.retries;
          byModel.set(key, m);
          for (const [worker, part] of c.parts) {
            const w = byWorker.get(worker) ?? { attempts: 0, takeovers: 0, finished: 0 };
            w.attempts += part.attempts;
            w.takeovers += part.takeovers;
            w.finished += part.finished;
            byWorker.set(worker, w);
          }
        }
        expect(
          Object.fromEntries(
            rebuilt.models.map((m) => [
              `${m.model}/${m.provider}`,
              { answers: m.answers, completed: m.completed, failed: m.failed, retries: m.retries },
            ]),
          ),
        ).toEqual(Object.fromEntries(byModel));
        expect(
          Object.fromEntries(
            rebuilt.workers.map((w) => [w.worker, { attempts: w.attempts, takeovers: w.takeovers, finished: w.finished }]),
          ),
        ).toEqual(Object.fromEntries(byWorker));
        expect(byWorker.get("survivor")?.takeovers).toBe(1);

        // The overview the gateway serves is built from the same rows.
        const overview = (await (await fetch(`${url}${routes.opsOverview()}`)).json()) as {
          models: unknown;
          workers: unknown;
          live: unknown[];
        };
        expect(overview.models).toEqual(rebuilt.models);
        expect(overview.live).toEqual([]);
      } finally {
        await store.close();
      }
      await gatewayDone(gateway);
    }, 300_000);
  });
}

/** Stops the gateway with SIGTERM: its projector stops with it. */
async function gatewayDone(gateway: LifelineProcess): Promise<void> {
  expect(await gateway.terminate()).toBe(0);
}
