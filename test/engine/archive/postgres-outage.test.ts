import pg from "pg";
import { afterAll, beforeAll, expect, test } from "vitest";
import { readLog } from "../../../src/engine/read-log.ts";
import { RedisEngine } from "../../../src/engine/redis/redis-engine.ts";
import { startInProcess } from "../../support/in-process.ts";
import { postgresAvailable, requirePostgres, startPostgres, type PostgresServer } from "../../support/postgres-harness.ts";
import { redisAvailable, requireRedis, startStandalone, type RedisServer } from "../../support/redis-harness.ts";
import { until } from "../../support/waits.ts";

/**
 * PostgreSQL going down under a running deployment: answers go on (they never touch it), what
 * only the archive could say is 503 rather than a wrong 404, and once PostgreSQL is back the
 * archiver copies what ended meanwhile.
 */

let redis: RedisServer | undefined;
let postgres: PostgresServer | undefined;
beforeAll(async () => {
  if (redisAvailable()) redis = await startStandalone();
  if (postgresAvailable()) postgres = await startPostgres();
});
afterAll(async () => Promise.all([redis?.stop(), postgres?.stop()]));

async function startAnswer(base: string, content: string): Promise<string> {
  const res = await fetch(`${base}/v1/generations`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "sim", messages: [{ role: "user", content }], max_tokens: 16 }),
  });
  expect(res.status).toBe(201);
  return ((await res.json()) as { id: string }).id;
}

async function statusOf(base: string, id: string): Promise<string> {
  return ((await (await fetch(`${base}/v1/generations/${id}`)).json()) as { status: string }).status;
}

test("with PostgreSQL down, answers run and finish, an unknown id is 503; once it is back, what ended meanwhile is archived", async (ctx) => {
  requireRedis(ctx);
  requirePostgres(ctx);
  if (!redis || !postgres) throw new Error("not started");
  const prefix = `outage${process.pid}`;
  const url = await postgres.createDatabase("outage");
  const node = await startInProcess({
    LIFELINE_ENGINE: "redis",
    LIFELINE_REDIS_URL: redis.url,
    LIFELINE_REDIS_PREFIX: prefix,
    LIFELINE_POSTGRES_URL: url,
  });
  const engine = new RedisEngine({ target: { mode: "standalone", url: redis.url }, prefix });
  const archivedEntries = async (id: string): Promise<string[] | undefined> => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const rows = await client.query<{ entry: string }>('SELECT entry FROM archived_entries WHERE generation_id = $1 ORDER BY "offset"', [
        id,
      ]);
      return rows.rowCount === 0 ? undefined : rows.rows.map((r) => r.entry);
    } finally {
      await client.end();
    }
  };
  try {
    const before = await startAnswer(node.url, "before the outage");
    await until(async () => (await archivedEntries(before)) !== undefined, 30_000, "the first answer archived");

    await postgres.kill();
    const during = await startAnswer(node.url, "during the outage");
    await until(async () => (await statusOf(node.url, during)) === "completed", 30_000, "an answer to complete with PostgreSQL down");
    expect(await statusOf(node.url, before)).toBe("completed"); // still in Redis: read from there
    const unknown = await fetch(`${node.url}/v1/generations/gen_${"1".repeat(26)}`);
    expect(unknown.status).toBe(503);
    expect(((await unknown.json()) as { error: { code: string } }).error.code).toBe("engine_unavailable");

    await postgres.restart();
    await until(
      async () => (await archivedEntries(during).catch(() => undefined)) !== undefined,
      60_000,
      "the answer that ended during the outage archived",
    );
    expect(await archivedEntries(during)).toEqual((await readLog(engine, during)).map((e) => JSON.stringify(e)));
    await until(
      async () => (await fetch(`${node.url}/v1/generations/gen_${"1".repeat(26)}`)).status === 404,
      30_000,
      "an unknown id to be 404 again",
    );
    // The failed steps and the copies are counted for Prometheus.
    const metrics = await (await fetch(`${node.url}/metrics`)).text();
    expect(Number(/^lifeline_archive_failures_total (\d+)/m.exec(metrics)?.[1])).toBeGreaterThan(0);
    expect(Number(/^lifeline_archive_logs_total\{result="archived"\} (\d+)/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(2);
  } finally {
    await engine.close();
    await node.stop();
  }
});
