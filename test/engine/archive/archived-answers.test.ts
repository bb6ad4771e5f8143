import { Redis } from "ioredis";
import pg from "pg";
import WebSocket from "ws";
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "vitest";
import { loadConfig } from "../../../src/cli/config.ts";
import { startNode, type LifelineNode } from "../../../src/cli/node.ts";
import { RedisKeys } from "../../../src/engine/redis/keys.ts";
import { SqliteArchive } from "../../../src/engine/archive/sqlite.ts";
import { startInProcess } from "../../support/in-process.ts";
import { postgresAvailable, requirePostgres, startPostgres, type PostgresServer } from "../../support/postgres-harness.ts";
import { redisAvailable, requireRedis, startStandalone, type RedisServer } from "../../support/redis-harness.ts";
import { runLifeline } from "../../support/run-cli.ts";
import { tempDir } from "../../support/temp-dir.ts";
import { until } from "../../support/waits.ts";

/**
 * The must-show of the archive (decision 039): on a real Redis whose retention is a few seconds,
 * an answer completes, is archived, its Redis keys expire, and every way of reading it (the state,
 * the event stream, long-poll, the WebSocket, the timeline, `lifeline replay`) gives the same bytes
 * as it gave while the log was live. Once with PostgreSQL, once with the sqlite archive.
 */

/** Long enough for the live reads below to finish on a loaded machine; checked, not hoped for. */
const RETENTION_SECONDS = 6;

let redis: RedisServer | undefined;
let postgres: PostgresServer | undefined;
const dir = tempDir("lifeline-archived-");

beforeAll(async () => {
  if (redisAvailable()) redis = await startStandalone();
  if (postgresAvailable()) postgres = await startPostgres();
});
afterAll(async () => {
  await Promise.all([redis?.stop(), postgres?.stop()]);
  dir.remove();
});

/** Every view of one answer, as the bytes a client receives (heartbeat comments left out). */
interface Views {
  readonly state: string;
  readonly events: string;
  readonly poll: string;
  readonly timeline: string;
  readonly websocket: readonly string[];
  /** The protocol doors' views: the OpenAI response object, the Durable Streams read of the log. */
  readonly openaiResponse: string;
  readonly durableStream: string;
}

async function text(url: string): Promise<string> {
  const res = await fetch(url);
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status} ${await res.text()}`);
  return res.text();
}

async function viewsOf(base: string, id: string): Promise<Views> {
  const events = (await text(`${base}/v1/generations/${id}/events`))
    .split("\n")
    .filter((line) => !line.startsWith(":"))
    .join("\n");
  return {
    state: await text(`${base}/v1/generations/${id}`),
    events,
    poll: await text(`${base}/v1/generations/${id}/poll?from=0`),
    timeline: await text(`${base}/v1/generations/${id}/timeline`),
    websocket: await websocketFrames(base, id),
    openaiResponse: await text(`${base}/v1/responses/${id}`),
    durableStream: await text(`${base}/v1/stream/generations/${id}?offset=-1`),
  };
}

/** The frames of one WebSocket subscription from the start of the log to its `end`. */
function websocketFrames(base: string, id: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${base.replace(/^http/, "ws")}/v1/ws`);
    const frames: string[] = [];
    socket.on("open", () => socket.send(JSON.stringify({ type: "subscribe", sub: "a", generation: id })));
    socket.on("message", (data: Buffer) => {
      const frame = data.toString();
      if ((JSON.parse(frame) as { type: string }).type === "ping") return;
      frames.push(frame);
      if ((JSON.parse(frame) as { type: string }).type === "end") {
        socket.close();
        resolve(frames);
      }
    });
    socket.on("error", reject);
  });
}

async function startAnswer(base: string, content: string): Promise<string> {
  const res = await fetch(`${base}/v1/generations`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "sim", messages: [{ role: "user", content }], max_tokens: 24, seed: 7 }),
  });
  expect(res.status).toBe(201);
  return ((await res.json()) as { id: string }).id;
}

const ARCHIVES = [
  { name: "PostgreSQL", archive: "postgres" as const },
  { name: "sqlite", archive: "sqlite" as const },
];

for (const { name, archive } of ARCHIVES) {
  describe(`an answer whose Redis log expired, read back from the ${name} archive`, () => {
    let node: (LifelineNode & { url: string }) | undefined;
    let raw: Redis | undefined;
    let env: Record<string, string> = {};
    const prefix = `arch${archive}${process.pid}`;

    beforeEach(async (ctx) => {
      requireRedis(ctx);
      if (archive === "postgres") requirePostgres(ctx);
      if (!redis || node) return;
      env = {
        LIFELINE_ENGINE: "redis",
        LIFELINE_REDIS_URL: redis.url,
        LIFELINE_REDIS_PREFIX: prefix,
        LIFELINE_REDIS_RETENTION_SECONDS: String(RETENTION_SECONDS),
        LIFELINE_ARCHIVE: archive,
        LIFELINE_DATA_DIR: `${dir.path}/${archive}`,
        ...(archive === "postgres" && postgres ? { LIFELINE_POSTGRES_URL: await postgres.createDatabase(`answers_${archive}`) } : {}),
      };
      node = await startInProcess(env);
      raw = new Redis(redis.url);
    });
    afterAll(async () => {
      raw?.disconnect();
      await node?.stop();
    });

    /** Whether the archive holds `id`, asked of the store itself rather than through Lifeline. */
    async function archived(id: string): Promise<boolean> {
      if (archive === "sqlite") {
        const store = new SqliteArchive(env.LIFELINE_DATA_DIR ?? "");
        try {
          return (await store.head(id)) !== undefined;
        } finally {
          await store.close();
        }
      }
      const client = new pg.Client({ connectionString: env.LIFELINE_POSTGRES_URL });
      await client.connect();
      try {
        return (await client.query("SELECT 1 FROM archived_logs WHERE generation_id = $1", [id])).rowCount === 1;
      } finally {
        await client.end();
      }
    }

    test("the state, event stream, long-poll, WebSocket, timeline, the doors and replay give the bytes they gave while it was live, and a rebuild of the read models still counts it", async () => {
      if (!node || !raw) throw new Error("not started");
      const keys = new RedisKeys(prefix);
      const id = await startAnswer(node.url, `archive me on ${name}`);
      // The live event stream, followed from the start to the end.
      const live = await viewsOf(node.url, id);
      expect(JSON.parse(live.state)).toMatchObject({ id, status: "completed" });
      expect(JSON.parse(live.openaiResponse)).toMatchObject({ id, status: "completed" });
      expect(live.durableStream).toContain('"type":"completed"');
      // Every live view was served by Redis: the log is still there after the last of them, and it expires.
      expect(await raw.exists(keys.log(id), keys.meta(id))).toBe(2);
      expect(await raw.ttl(keys.log(id))).toBeGreaterThan(0);

      await until(() => archived(id), 60_000, `${id} archived`);
      await until(async () => (await raw!.exists(keys.log(id), keys.meta(id))) === 0, 60_000, `the Redis keys of ${id} to expire`);

      const afterwards = await viewsOf(node.url, id);
      expect(afterwards.state).toBe(live.state);
      expect(afterwards.events).toBe(live.events);
      expect(afterwards.poll).toBe(live.poll);
      expect(afterwards.timeline).toBe(live.timeline);
      expect(afterwards.websocket).toEqual(live.websocket);
      expect(afterwards.openaiResponse).toBe(live.openaiResponse);
      expect(afterwards.durableStream).toBe(live.durableStream);
      // Cancelling it is what it was: already finished.
      expect((await fetch(`${node.url}/v1/generations/${id}/cancel`, { method: "POST" })).status).toBe(409);

      // `lifeline replay` reads the same log, no gateway involved; the read models are rebuilt from the
      // logs alone meanwhile (three commands of their own, run side by side).
      const [replayed, timeline, rebuilt] = await Promise.all([
        runLifeline(["replay", id, "--entries"], env),
        runLifeline(["replay", id, "--json"], env),
        runLifeline(["projections", "rebuild", "--json"], env),
      ]);
      expect(replayed.status, replayed.stderr).toBe(0);
      const liveEntries = live.events
        .split("\n")
        .filter((line) => line.startsWith("data: "))
        .map((line) => line.slice("data: ".length));
      expect(replayed.stdout.trimEnd().split("\n")).toEqual(liveEntries);
      expect(JSON.parse(timeline.stdout)).toEqual(JSON.parse(live.timeline));

      // The read models rebuilt from the logs alone still hold it: the rebuild reads the archive too.
      expect(rebuilt.status, rebuilt.stderr).toBe(0);
      const found = (await (await fetch(`${node.url}/v1/ops/generations?id=${id}`)).json()) as {
        generations: { id: string; status: string }[];
      };
      expect(found.generations).toEqual([expect.objectContaining({ id, status: "completed" })]);
    });

    test("an id that never existed is still 404, not read from anywhere", async () => {
      if (!node) throw new Error("not started");
      const res = await fetch(`${node.url}/v1/generations/gen_${"0".repeat(26)}`);
      expect(res.status).toBe(404);
    });
  });
}

describe("a gateway that was down while answers ended", () => {
  test("archives them when it starts, and after a restart what ended meanwhile", async (ctx) => {
    requireRedis(ctx);
    requirePostgres(ctx);
    if (!redis || !postgres) throw new Error("not started");
    const common = { LIFELINE_ENGINE: "redis", LIFELINE_REDIS_URL: redis.url, LIFELINE_REDIS_PREFIX: `catchup${process.pid}` };
    const url = await postgres.createDatabase("catch_up");
    // Gateway and worker without an archive: answers end while nothing archives them.
    const working = await startInProcess({ ...common, LIFELINE_ARCHIVE: "off" });
    const archivingGateway = async (): Promise<LifelineNode> =>
      startNode(loadConfig({ ...common, LIFELINE_POSTGRES_URL: url, LIFELINE_PORT: "0", LIFELINE_LOG_LEVEL: "silent" }, {}), {
        gateway: true,
        worker: false,
      });
    const client = new pg.Client({ connectionString: url });
    const isArchived = async (id: string): Promise<boolean> => {
      const result = await client.query("SELECT 1 FROM archived_logs WHERE generation_id = $1", [id]);
      return result.rowCount === 1;
    };
    const finished = async (id: string): Promise<void> =>
      until(async () => JSON.parse(await text(`${working.url}/v1/generations/${id}`)).status === "completed", 30_000, `${id} completed`);
    try {
      const first = [await startAnswer(working.url, "first"), await startAnswer(working.url, "second")];
      for (const id of first) await finished(id);
      let gateway = await archivingGateway();
      await client.connect();
      for (const id of first) await until(() => isArchived(id), 30_000, `${id} archived once a gateway started`);
      await gateway.stop();

      const meanwhile = [await startAnswer(working.url, "third"), await startAnswer(working.url, "fourth")];
      for (const id of meanwhile) await finished(id);
      for (const id of meanwhile) expect(await isArchived(id)).toBe(false);
      gateway = await archivingGateway();
      for (const id of meanwhile) await until(() => isArchived(id), 30_000, `${id} archived after the restart`);
      await gateway.stop();
      const position = await client.query("SELECT position FROM archive_positions WHERE reader = 'archiver'");
      expect(position.rowCount).toBe(1);
    } finally {
      await client.end().catch(() => undefined);
      await working.stop();
    }
  });
});

describe("the embedded node", () => {
  test("on the sqlite engine it archives its finished answers to PostgreSQL when given one", async (ctx) => {
    requirePostgres(ctx);
    if (!postgres) throw new Error("not started");
    const url = await postgres.createDatabase("embedded");
    const node = await startInProcess({ LIFELINE_ENGINE: "sqlite", LIFELINE_DATA_DIR: `${dir.path}/embedded`, LIFELINE_POSTGRES_URL: url });
    const client = new pg.Client({ connectionString: url });
    try {
      const id = await startAnswer(node.url, "embedded");
      await until(async () => JSON.parse(await text(`${node.url}/v1/generations/${id}`)).status === "completed", 30_000, `${id} completed`);
      const live = await text(`${node.url}/v1/generations/${id}/events`);
      await client.connect();
      const archived = async (): Promise<string[]> =>
        (
          await client.query<{ entry: string }>('SELECT entry FROM archived_entries WHERE generation_id = $1 ORDER BY "offset"', [id])
        ).rows.map((r) => r.entry);
      await until(async () => (await archived()).length > 0, 30_000, `${id} archived`);
      const dataLines = live
        .split("\n")
        .filter((line) => line.startsWith("data: "))
        .map((line) => line.slice("data: ".length));
      expect(await archived()).toEqual(dataLines);
    } finally {
      await client.end().catch(() => undefined);
      await node.stop();
    }
  });
});
