import { execFile } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { Cluster, Redis } from "ioredis";
import { afterAll, beforeAll, beforeEach, describe, expect, test, vi } from "vitest";
import {
  redisAvailable,
  requireRedis,
  startCluster,
  startSentinelGroup,
  startStandalone,
  type RedisCluster,
  type RedisEndpoint,
  type SentinelGroup,
  type RedisServer,
} from "./support/redis-harness.ts";
import { tempDir } from "./support/temp-dir.ts";

const run = promisify(execFile);

/** A client that fails fast instead of retrying, to ask one node one thing. */
function directClient(node: RedisEndpoint): Redis {
  return new Redis({ host: node.host, port: node.port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
}

async function refusesConnections(node: RedisEndpoint): Promise<boolean> {
  const client = directClient(node);
  client.on("error", () => undefined);
  try {
    await client.connect();
    return false;
  } catch {
    return true;
  } finally {
    client.disconnect();
  }
}

describe("requireRedis", () => {
  const noRedis = tempDir("lifeline-no-redis-");
  afterAll(() => noRedis.remove());

  test("fails the test under CI=true when redis-server is missing", () => {
    const notes: (string | undefined)[] = [];
    const ctx = { skip: (note?: string) => void notes.push(note) };
    expect(() => requireRedis(ctx, { PATH: noRedis.path, CI: "true" })).toThrow(/redis-server is not on PATH.*CI must run/);
    expect(notes).toEqual([]);
  });

  test("skips with a loud warning outside CI when redis-server is missing", () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => undefined);
    const notes: (string | undefined)[] = [];
    requireRedis({ skip: (note?: string) => void notes.push(note) }, { PATH: noRedis.path });
    expect(notes).toEqual([expect.stringMatching(/redis-server is not on PATH/)]);
    expect(warn).toHaveBeenCalledWith(expect.stringMatching(/SKIPPING A REDIS TEST/));
    warn.mockRestore();
  });
});

describe("redis harness", () => {
  beforeEach((ctx) => requireRedis(ctx));

  describe("a standalone server", () => {
    let server: RedisServer | undefined;
    beforeAll(async () => {
      if (redisAvailable()) server = await startStandalone();
    });
    afterAll(async () => server?.stop());

    test("answers SET and GET on a free port of its own, not the machine's 6379", async () => {
      if (!server) throw new Error("no server");
      expect(server.port).not.toBe(6379);
      expect(server.url).toBe(`redis://127.0.0.1:${server.port}`);
      const client = new Redis(server.url);
      try {
        await client.set("harness:standalone:greeting", "hello");
        expect(await client.get("harness:standalone:greeting")).toBe("hello");
        expect(await client.config("GET", "save")).toEqual(["save", ""]);
      } finally {
        client.disconnect();
      }
    });

    test("kill() SIGKILLs the server and stop() removes its folder", async () => {
      const doomed = await startStandalone();
      expect(existsSync(doomed.dir)).toBe(true);
      await doomed.kill();
      expect(doomed.isRunning()).toBe(false);
      expect(await refusesConnections(doomed)).toBe(true);
      await doomed.stop();
      expect(existsSync(doomed.dir)).toBe(false);
    });

    test("a test process that exits without stop() leaves no server and no folder behind", async () => {
      const scratch = tempDir();
      try {
        const script = join(scratch.path, "forget-to-stop.mjs");
        const harness = new URL("./support/redis-harness.ts", import.meta.url).href;
        writeFileSync(
          script,
          `import { startStandalone } from ${JSON.stringify(harness)};\n` +
            `const s = await startStandalone();\n` +
            `console.log(JSON.stringify({ host: s.host, port: s.port, dir: s.dir }));\n` +
            `process.exit(0);\n`,
        );
        const { stdout } = await run(process.execPath, ["--import", "tsx", script], { timeout: 20_000 });
        const left = JSON.parse(stdout) as { host: string; port: number; dir: string };
        expect(await refusesConnections(left)).toBe(true);
        expect(existsSync(left.dir)).toBe(false);
      } finally {
        scratch.remove();
      }
    });
  });

  describe("a Sentinel group", () => {
    let group: SentinelGroup | undefined;
    beforeAll(async () => {
      if (redisAvailable()) group = await startSentinelGroup({ masterName: "lifeline" });
    });
    afterAll(async () => group?.stop());

    test("a Sentinel client writes again after the primary is SIGKILLed and the replica is promoted", async () => {
      if (!group) throw new Error("no group");
      const client = new Redis({ sentinels: group.sentinels.map(({ host, port }) => ({ host, port })), name: group.masterName });
      const clientErrors: Error[] = [];
      client.on("error", (err: Error) => clientErrors.push(err)); // expected while the primary is down
      try {
        expect(await group.currentPrimary()).toEqual({ host: "127.0.0.1", port: group.primary.port });
        await client.set("harness:sentinel:before", "1");
        expect(await client.wait(1, 2_000)).toBe(1); // on the replica before the kill

        const killed = await group.killPrimary();
        expect(killed).toBe(group.primary);
        const promoted = await group.waitForFailover(20_000);
        expect(promoted).toBe(group.replica);
        expect(await group.currentPrimary()).toEqual({ host: "127.0.0.1", port: group.replica.port });

        await client.set("harness:sentinel:after", "2");
        expect(await client.get("harness:sentinel:before")).toBe("1");
        const direct = directClient(promoted);
        try {
          await direct.connect();
          expect(await direct.get("harness:sentinel:after")).toBe("2");
          expect((await direct.role())[0]).toBe("master");
        } finally {
          direct.disconnect();
        }
      } finally {
        client.disconnect();
      }
    });
  });

  describe("a Cluster", () => {
    let cluster: RedisCluster | undefined;
    beforeAll(async () => {
      if (redisAvailable()) cluster = await startCluster({ primaries: 3 });
    });
    afterAll(async () => cluster?.stop());

    test("a Cluster client spreads 100 keys over all three primaries and reads each back", async () => {
      if (!cluster) throw new Error("no cluster");
      const client = new Cluster(cluster.nodes.map(({ host, port }) => ({ host, port })));
      try {
        const keys = Array.from({ length: 100 }, (_, i) => `harness:cluster:${i}`);
        await Promise.all(keys.map((key, i) => client.set(key, String(i))));
        expect(await Promise.all(keys.map((key) => client.get(key)))).toEqual(keys.map((_, i) => String(i)));
        expect(await client.cluster("INFO")).toMatch(/cluster_state:ok/);

        const perNode = await Promise.all(
          cluster.nodes.map(async (node) => {
            const direct = directClient(node);
            try {
              await direct.connect();
              return await direct.dbsize();
            } finally {
              direct.disconnect();
            }
          }),
        );
        expect(perNode.every((n) => n > 0)).toBe(true);
        expect(perNode.reduce((a, b) => a + b, 0)).toBe(100);
      } finally {
        client.disconnect();
      }
    });
  });
});
