import { afterEach, describe, expect, it } from "vitest";
import { MemoryWorkerStatusStore } from "../../src/engine/workers/memory.ts";
import type { WorkerStatus, WorkerStatusStore } from "../../src/engine/workers/port.ts";
import { RedisWorkerStatusStore } from "../../src/engine/workers/redis.ts";
import { SqliteWorkerStatusStore } from "../../src/engine/workers/sqlite.ts";
import { requireRedis } from "../support/redis-harness.ts";
import { redisPerFile } from "../support/redis-per-file.ts";
import { tempDir } from "../support/temp-dir.ts";
import { until } from "../support/waits.ts";

const LONG_MS = 600_000;

function status(worker: string, fields: Partial<WorkerStatus> = {}): WorkerStatus {
  return { worker, seenAt: new Date().toISOString(), leases: [], breakers: [], ...fields };
}

/** One suite for every worker status store: what the workers' reports and the gateway's /v1/ops/workers rely on. */
function workerStatusConformance(
  name: string,
  open: () => { store: WorkerStatusStore; peer?: () => WorkerStatusStore; close(): Promise<void> },
  skip?: (ctx: { skip(note?: string): void }) => void,
  /** False for a store in one process's memory: there is no other process to see its reports. */
  shared = true,
): void {
  describe(`worker status store: ${name}`, () => {
    let harness: ReturnType<typeof open> | undefined;
    afterEach(async () => {
      await harness?.close();
      harness = undefined;
    });
    const start = (ctx: { skip(note?: string): void }) => {
      skip?.(ctx);
      harness = open();
      return harness;
    };

    it("lists every worker's newest report, by name, with its leases and breakers as given", async (ctx) => {
      const { store } = start(ctx);
      expect(await store.list()).toEqual([]);
      const b = status("w-b", {
        leases: [{ id: "gen_1", fence: 3, since: "2026-11-30T10:00:00.000Z" }],
        breakers: [
          { provider: "primary", state: "open", openedAt: "2026-11-30T10:00:01.000Z" },
          { provider: "backup", state: "closed" },
        ],
      });
      await store.report(status("w-b"), LONG_MS);
      await store.report(b, LONG_MS);
      await store.report(status("w-a"), LONG_MS);
      expect(await store.list()).toEqual([status("w-a", { seenAt: (await store.list())[0]!.seenAt }), b]);
    });

    it("forgets a report once its time to live has passed, and one removed at once", async (ctx) => {
      const { store } = start(ctx);
      await store.report(status("short"), 300);
      await store.report(status("long"), LONG_MS);
      await store.report(status("gone"), LONG_MS);
      await store.remove("gone");
      await store.remove("never-reported");
      expect((await store.list()).map((s) => s.worker)).toContain("long");
      expect((await store.list()).map((s) => s.worker)).not.toContain("gone");
      await until(async () => !(await store.list()).some((s) => s.worker === "short"), 30_000, "the short report to expire");
      expect((await store.list()).map((s) => s.worker)).toEqual(["long"]);
    });

    it("a report extends the worker's time to live: a worker that keeps reporting stays listed", async (ctx) => {
      const { store } = start(ctx);
      await store.report(status("steady"), 400);
      await store.report(status("steady", { leases: [{ id: "gen_2", fence: 1, since: "2026-11-30T10:00:00.000Z" }] }), LONG_MS);
      await store.report(status("fading"), 400);
      await until(async () => (await store.list()).length === 1, 30_000, "the fading report to expire");
      expect((await store.list())[0]?.leases).toEqual([{ id: "gen_2", fence: 1, since: "2026-11-30T10:00:00.000Z" }]);
    });

    if (shared) {
      it("a report made through one connection is listed through another (the gateway reads what workers wrote)", async (ctx) => {
        const { store, peer } = start(ctx);
        if (!peer) throw new Error("a shared store's harness must open a peer");
        const other = peer();
        try {
          await store.report(status("elsewhere"), LONG_MS);
          expect((await other.list()).map((s) => s.worker)).toEqual(["elsewhere"]);
          await other.remove("elsewhere");
          expect(await store.list()).toEqual([]);
        } finally {
          await other.close();
        }
      });
    }
  });
}

workerStatusConformance(
  "memory",
  () => {
    const store = new MemoryWorkerStatusStore();
    return { store, close: () => store.close() };
  },
  undefined,
  false,
);

workerStatusConformance("sqlite", () => {
  const dir = tempDir();
  const store = new SqliteWorkerStatusStore({ dataDir: dir.path });
  return {
    store,
    peer: () => new SqliteWorkerStatusStore({ dataDir: dir.path }),
    close: async () => {
      await store.close();
      dir.remove();
    },
  };
});

let prefixes = 0;
const redis = redisPerFile();

workerStatusConformance(
  "redis standalone",
  () => {
    const prefix = `w${process.pid}x${prefixes++}`;
    const open = () => new RedisWorkerStatusStore({ target: { mode: "standalone", url: redis.server!.url }, prefix });
    const store = open();
    return { store, peer: open, close: () => store.close() };
  },
  (ctx) => requireRedis(ctx),
);

workerStatusConformance(
  "redis cluster",
  () => {
    const prefix = `w${process.pid}x${prefixes++}`;
    const open = () =>
      new RedisWorkerStatusStore({
        target: { mode: "cluster", nodes: redis.cluster!.nodes.map((n) => ({ host: n.host, port: n.port })) },
        prefix,
      });
    const store = open();
    return { store, peer: open, close: () => store.close() };
  },
  (ctx) => requireRedis(ctx),
);
