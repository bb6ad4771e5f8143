import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Scope } from "../../src/core/api-keys.ts";
import { routes } from "../../src/core/routes.ts";
import { KeyRing } from "../../src/engine/keys/key-ring.ts";
import { SqliteKeyStore } from "../../src/engine/keys/sqlite.ts";
import type { WorkerStatus } from "../../src/engine/workers/port.ts";
import { startInProcess } from "../support/in-process.ts";
import { simRequest } from "../support/sim-answer.ts";
import { tempDir } from "../support/temp-dir.ts";
import { until } from "../support/waits.ts";

type Node = Awaited<ReturnType<typeof startInProcess>>;

const workersOf = async (node: Node, key?: string): Promise<WorkerStatus[]> => {
  const res = await fetch(`${node.url}${routes.opsWorkers()}`, { headers: key ? { authorization: `Bearer ${key}` } : {} });
  expect(res.status).toBe(200);
  return ((await res.json()) as { workers: WorkerStatus[] }).workers;
};

describe("GET /v1/ops/workers", () => {
  let node: Node;
  beforeAll(async () => {
    // A slow model: the answer is still running while the test looks at the worker's leases.
    node = await startInProcess({ LIFELINE_SIM_TOKENS_PER_SECOND: "20", LIFELINE_WORKER_NAME: "w-ops" });
  });
  afterAll(async () => {
    await node?.stop();
  });

  it("shows the worker with the lease of the answer it runs and its provider's breaker, then the lease gone once the answer ends", async () => {
    const before = Date.now();
    const created = await fetch(`${node.url}${routes.generations()}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(simRequest("a lease to be seen", { max_tokens: 400 })), // 20 s: reports every 2 s see it
    });
    const { id } = (await created.json()) as { id: string };
    await until(async () => (await workersOf(node))[0]?.leases.some((l) => l.id === id) ?? false, 30_000, "the lease in a report");
    const [worker] = await workersOf(node);
    expect(worker).toMatchObject({ worker: "w-ops", breakers: [{ provider: "sim", state: "closed" }] });
    const lease = worker!.leases.find((l) => l.id === id)!;
    expect(lease.fence).toBe(1);
    expect(Date.parse(lease.since)).toBeGreaterThanOrEqual(before - 1000);
    expect(Date.parse(worker!.seenAt)).toBeGreaterThanOrEqual(Date.parse(lease.since));
    await fetch(`${node.url}${routes.cancel(id)}`, { method: "POST" });
    await until(async () => (await workersOf(node))[0]?.leases.length === 0, 30_000, "the lease to go from the report");
  });

  it("serves the operations page at /ops", async () => {
    const res = await fetch(`${node.url}${routes.opsPage()}`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/html/);
    expect(await res.text()).toContain("Lifeline: operations");
  });
});

describe("GET /v1/ops/workers in a deployment with keys", () => {
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
    node = await startInProcess({ LIFELINE_ENGINE: "sqlite", LIFELINE_DATA_DIR: data.path, LIFELINE_WORKER_NAME: "w-keys" });
  });
  afterAll(async () => {
    await node?.stop();
    data.remove();
  });

  it("answers an admin key, refuses a tenant's key (403 forbidden) and a caller without one (401), and the page itself is public", async () => {
    await until(async () => (await workersOf(node, keys.admin)).length === 1, 30_000, "the worker's first report");
    expect((await workersOf(node, keys.admin))[0]?.worker).toBe("w-keys");
    const asTenant = await fetch(`${node.url}${routes.opsWorkers()}`, { headers: { authorization: `Bearer ${keys.tenant}` } });
    expect(asTenant.status).toBe(403);
    expect(((await asTenant.json()) as { error: { code: string } }).error.code).toBe("forbidden");
    const anonymous = await fetch(`${node.url}${routes.opsWorkers()}`);
    expect(anonymous.status).toBe(401);
    expect(((await anonymous.json()) as { error: { code: string } }).error.code).toBe("unauthorized");
    expect((await fetch(`${node.url}${routes.opsPage()}`)).status).toBe(200);
  });
});
