import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Scope } from "../../src/core/api-keys.ts";
import { KeyRing } from "../../src/engine/keys/key-ring.ts";
import { SqliteKeyStore } from "../../src/engine/keys/sqlite.ts";
import { routes } from "../../src/core/routes.ts";
import { MemoryEngine } from "../../src/engine/memory/memory-engine.ts";
import { Gateway } from "../../src/gateway/gateway.ts";
import type { Overview } from "../../src/gateway/routes/ops-answers.ts";
import { createLogger } from "../../src/observability/logger.ts";
import { Metrics } from "../../src/observability/metrics.ts";
import { MemoryReadModelStore } from "../../src/projections/store/memory.ts";
import type { Summary } from "../../src/projections/summary.ts";
import { startInProcess } from "../support/in-process.ts";
import { simRequest } from "../support/sim-answer.ts";
import { tempDir } from "../support/temp-dir.ts";
import { never, until } from "../support/waits.ts";

type Node = Awaited<ReturnType<typeof startInProcess>>;

async function getJson<T>(url: string): Promise<{ status: number; body: T }> {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as T };
}

describe("GET /v1/ops/overview and /v1/ops/generations on a node", () => {
  let node: Node;
  const ids: string[] = [];
  beforeAll(async () => {
    node = await startInProcess({ LIFELINE_WORKER_NAME: "w-ops" });
    for (const content of ["one", "two", "three"]) {
      const res = await fetch(`${node.url}${routes.generations()}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(simRequest(content, { max_tokens: 8 })),
      });
      ids.push(((await res.json()) as { id: string }).id);
    }
  });
  afterAll(async () => {
    await node?.stop();
  });

  const search = (query: string) => getJson<{ generations: Summary[]; next?: string }>(`${node.url}${routes.opsGenerations()}?${query}`);

  it("summarises every finished answer, counts them per model and per worker, and shows none live", async () => {
    await until(async () => (await search("status=completed")).body.generations.length === 3, 60_000, "three completed answers projected");
    const { status, body } = await getJson<Overview>(`${node.url}${routes.opsOverview()}`);
    expect(status).toBe(200);
    expect(body.live).toEqual([]);
    expect(body.models).toEqual([
      { model: "sim", provider: "sim", answers: 3, completed: 3, failed: 0, retries: 0, breakerOpens: 0, failuresByCode: {} },
    ]);
    expect(body.workers).toMatchObject([{ worker: "w-ops", attempts: 3, takeovers: 0, finished: 3 }]);
    const [one] = (await search(`id=${ids[0]}`)).body.generations;
    expect(one).toMatchObject({ id: ids[0], status: "completed", model: "sim", attempts: 1, retries: 0, takeovers: 0, worker: "w-ops" });
    expect(one!.usage?.completionTokens).toBe(8);
    expect(one!.totalMs).toBeGreaterThanOrEqual(one!.firstTokenMs!);
  });

  it("pages newest first with next, and filters by model and time", async () => {
    const first = await search("limit=2");
    expect(first.body.generations.map((g) => g.id)).toEqual([ids[2], ids[1]]);
    const second = await search(`limit=2&before=${first.body.next}`);
    expect(second.body.generations.map((g) => g.id)).toEqual([ids[0]]);
    expect(second.body.next).toBeUndefined();
    expect((await search("model=other")).body.generations).toEqual([]);
    expect((await search(`since=${new Date(Date.now() + 60_000).toISOString()}`)).body.generations).toEqual([]);
    expect((await search("until=2000-01-01T00:00:00Z")).body.generations).toEqual([]);
  });

  it("refuses every bad parameter with invalid_request naming it", async () => {
    for (const [query, parameter] of [
      ["id=nope", "id"],
      ["status=done", "status"],
      ["limit=0", "limit"],
      ["limit=201", "limit"],
      ["limit=ten", "limit"],
      ["since=yesterday", "since"],
      ["until=2026-13-45T00:00:00Z", "until"],
      ["before=abc", "before"],
      ["status=failed&status=completed", "status"],
      ["colour=red", "colour"],
      [`model=${"m".repeat(201)}`, "model"],
    ] as const) {
      const res = await search(query);
      expect(res.status, query).toBe(400);
      expect(res.body, query).toMatchObject({ error: { code: "invalid_request", details: { parameter } } });
    }
  });
});

describe("a stuck answer", () => {
  const engine = new MemoryEngine();
  const metrics = new Metrics({ defaultMetrics: false });
  const gateway = new Gateway({
    engine,
    metrics,
    logger: createLogger("silent"),
    models: () => ["sim"],
    heartbeatMs: 15_000,
    maxBodyBytes: 1024 * 1024,
    web: false,
    readModels: { store: new MemoryReadModelStore(), stuckAfterMs: 300 },
  });
  let url = "";
  beforeAll(async () => {
    url = await gateway.listen("127.0.0.1", 0);
  });
  afterAll(async () => {
    await gateway.close();
    await engine.close();
  });

  it("is live, marked stuck once its last entry is older than the threshold, and counted by lifeline_stuck_answers", async () => {
    const { id } = await engine.create(simRequest("stalls"));
    const claim = await engine.claim("w-stalled", 60_000, never);
    await engine.append(id, claim!.fence, 2, [{ type: "started", attempt: claim!.fence, worker: "w-stalled", model: "sim" }]);
    const live = async () => (await getJson<Overview>(`${url}${routes.opsOverview()}`)).body.live;
    await until(
      async () => (await live()).some((s) => s.id === id && s.status === "running" && s.stuck),
      30_000,
      "the answer marked stuck",
    );
    const [row] = await live();
    expect(row).toMatchObject({ id, status: "running", worker: "w-stalled", attempts: 1, lastOffset: 2 });
    expect(row!.ageMs).toBeGreaterThan(300);
    const gauge = async () => (await (await fetch(`${url}/metrics`)).text()).match(/^lifeline_stuck_answers (\d+)$/m)?.[1];
    await until(async () => (await gauge()) === "1", 30_000, "lifeline_stuck_answers 1");
    // It ends: no longer live, and the gauge falls back to 0.
    await engine.cancel(id);
    await until(async () => (await live()).length === 0, 30_000, "no live answer");
    await until(async () => (await gauge()) === "0", 30_000, "lifeline_stuck_answers 0");
  });
});

describe("the ops answer routes in a deployment with keys", () => {
  const data = tempDir();
  let node: Node;
  const keys: Record<string, string> = {};
  beforeAll(async () => {
    const store = new SqliteKeyStore({ dataDir: data.path });
    const ring = new KeyRing(store);
    const make = async (name: string, scopes: Scope[]) => (keys[name] = (await ring.create("acme", scopes)).key);
    await make("tenant", ["generations:create", "generations:read"]);
    await make("admin", ["admin"]);
    await store.close();
    node = await startInProcess({ LIFELINE_ENGINE: "sqlite", LIFELINE_DATA_DIR: data.path });
  });
  afterAll(async () => {
    await node?.stop();
    data.remove();
  });

  it("answer an admin key, and refuse a tenant's key (403 forbidden) and a caller without one (401)", async () => {
    for (const path of [routes.opsOverview(), `${routes.opsGenerations()}?limit=5`]) {
      const asAdmin = await fetch(`${node.url}${path}`, { headers: { authorization: `Bearer ${keys.admin}` } });
      expect(asAdmin.status, path).toBe(200);
      const asTenant = await fetch(`${node.url}${path}`, { headers: { authorization: `Bearer ${keys.tenant}` } });
      expect(asTenant.status, path).toBe(403);
      expect(((await asTenant.json()) as { error: { code: string } }).error.code).toBe("forbidden");
      const anonymous = await fetch(`${node.url}${path}`);
      expect(anonymous.status, path).toBe(401);
    }
  });

  it("summarise a tenant's answer with its tenant, in the sqlite read models of the data dir", async () => {
    const res = await fetch(`${node.url}${routes.generations()}`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${keys.tenant}` },
      body: JSON.stringify(simRequest("a tenant's answer", { max_tokens: 4 })),
    });
    const { id } = (await res.json()) as { id: string };
    const found = async () =>
      (
        (await (
          await fetch(`${node.url}${routes.opsGenerations()}?id=${id}`, { headers: { authorization: `Bearer ${keys.admin}` } })
        ).json()) as {
          generations: Summary[];
        }
      ).generations[0];
    await until(async () => (await found())?.status === "completed", 60_000, "the answer summarised as completed");
    expect(await found()).toMatchObject({ id, tenant: "acme", model: "sim", attempts: 1 });
  });
});
