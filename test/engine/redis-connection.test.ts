import { EventEmitter } from "node:events";
import type { Socket } from "node:net";
import type { Cluster, Redis } from "ioredis";
import { pino } from "pino";
import { beforeEach, describe, expect, it } from "vitest";
import { connectRedis, ERROR_LOG_EVERY_MS, reportConnectionErrors, type RedisClient } from "../../src/engine/redis/connection.ts";
import { requireRedis } from "../support/redis-harness.ts";
import { refusedPort } from "../support/refused-port.ts";
import { redisPerFile } from "../support/redis-per-file.ts";

beforeEach((ctx) => requireRedis(ctx));

/** Counts the writes a connection's socket hands to the kernel (`_write` for one chunk, `_writev` for several). */
function countWrites(redis: Redis): { readonly writes: () => number; readonly chunks: () => number } {
  const socket = redis.stream as Socket & {
    _write: (...args: unknown[]) => void;
    _writev: (chunks: unknown[], ...rest: unknown[]) => void;
  };
  let writes = 0;
  let chunks = 0;
  const write = socket._write.bind(socket);
  const writev = socket._writev.bind(socket);
  socket._write = (...args) => {
    writes += 1;
    chunks += 1;
    write(...args);
  };
  socket._writev = (list, ...rest) => {
    writes += 1;
    chunks += list.length;
    writev(list, ...rest);
  };
  return { writes: () => writes, chunks: () => chunks };
}

async function ready(client: RedisClient): Promise<void> {
  if (client.status !== "ready") await new Promise<void>((resolve) => client.once("ready", () => resolve()));
}

describe("a command connection that writes once per turn", () => {
  const redis = redisPerFile();

  it("sends the commands of one turn in one write, and the next turn's in one write of their own", async () => {
    const client = connectRedis({ mode: "standalone", url: redis.server!.url }, "turns", { writePerTurn: true }) as Redis;
    try {
      await ready(client);
      await client.set("turn-key", "v");
      const counted = countWrites(client);
      const first = Array.from({ length: 100 }, () => client.get("turn-key"));
      await new Promise((resolve) => setImmediate(resolve));
      expect({ writes: counted.writes(), chunks: counted.chunks() }).toEqual({ writes: 1, chunks: 100 });
      // The next turn's commands go in a write of their own.
      const second = Array.from({ length: 10 }, () => client.get("turn-key"));
      await new Promise((resolve) => setImmediate(resolve));
      expect(counted.writes()).toBe(2);
      expect(await Promise.all([...first, ...second])).toEqual(Array.from({ length: 110 }, () => "v"));
    } finally {
      client.disconnect();
    }
  });

  it("sends in one write the commands that the callbacks of one phase of the loop issue, each its own", async () => {
    const client = connectRedis({ mode: "standalone", url: redis.server!.url }, "phases", { writePerTurn: true }) as Redis;
    try {
      await ready(client);
      await client.set("phase-key", "v");
      const counted = countWrites(client);
      // Fifty timers due together run in one timers phase, each a callback of its own, as a
      // worker's coalescing windows closing together: a nextTick between them would write fifty times.
      const replies = await new Promise<Promise<string | null>[]>((resolve) => {
        const issued: Promise<string | null>[] = [];
        for (let i = 0; i < 50; i++) {
          setTimeout(() => {
            issued.push(client.get("phase-key"));
            if (issued.length === 50) resolve(issued);
          }, 5);
        }
        // Each timer reads the clock when it is set, so on a busy machine the fifty may be due a
        // millisecond apart and run in two phases. Holding the loop past the last one's due time
        // makes them all due when the timers phase comes.
        const dueBy = performance.now() + 20;
        while (performance.now() < dueBy);
      });
      await new Promise((resolve) => setImmediate(resolve));
      expect({ writes: counted.writes(), chunks: counted.chunks() }).toEqual({ writes: 1, chunks: 50 });
      expect(await Promise.all(replies)).toEqual(Array.from({ length: 50 }, () => "v"));
    } finally {
      client.disconnect();
    }
  });

  it("hands each reply over as it is read, not once the turn's last reply is in", async () => {
    const client = connectRedis({ mode: "standalone", url: redis.server!.url }, "replies", { writePerTurn: true }) as Redis;
    try {
      await ready(client);
      const big = 16 * 1024 * 1024;
      await client.set("reply-big", Buffer.alloc(big, 120));
      await client.set("reply-small", "s");
      const readBefore = client.stream.bytesRead;
      // One turn: the small reply comes first on the wire, the 16 MB one after it.
      const small = client.get("reply-small").then(() => client.stream.bytesRead - readBefore);
      const large = client.getBuffer("reply-big");
      const readWhenSmall = await small;
      expect((await large)?.length).toBe(big);
      // ioredis's auto-pipelining hands the small reply over only after the 16 MB are read.
      expect(readWhenSmall).toBeLessThan(big / 2);
    } finally {
      client.disconnect();
    }
  });

  it("on a Cluster, sends one write per node for the commands of one turn, whatever node they go to", async () => {
    const nodes = redis.cluster!.nodes.map((node) => ({ host: "127.0.0.1", port: node.port }));
    const client = connectRedis({ mode: "cluster", nodes }, "cluster-turns", { writePerTurn: true }) as Cluster;
    try {
      await ready(client);
      const keys = Array.from({ length: 60 }, (_, i) => `cluster-turn-${i}`);
      for (const key of keys) await client.set(key, key);
      const primaries = client.nodes("master");
      expect(primaries).toHaveLength(3);
      for (const node of primaries) await ready(node);
      const counted = primaries.map(countWrites);
      const values = Promise.all(keys.map((key) => client.get(key)));
      expect(await values).toEqual(keys);
      // Every primary holds some of the keys; each was written to once.
      expect(counted.map((c) => c.writes())).toEqual([1, 1, 1]);
      expect(counted.reduce((sum, c) => sum + c.chunks(), 0)).toBe(keys.length);
    } finally {
      client.disconnect();
    }
  });
});

/** A logger whose lines land in `lines`, parsed. */
function capturingLogger(): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  return {
    logger: pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) }),
    lines,
  };
}

describe("a connection's errors in the log", () => {
  it("while Redis is away: the first error at once, then one line per window with how many came since", () => {
    const { logger, lines } = capturingLogger();
    const client = new EventEmitter();
    let clock = 1_000_000;
    reportConnectionErrors(client, "lifeline-keys", logger, () => clock);
    for (let i = 0; i <= 200; i++) {
      client.emit("error", new Error("connect ECONNREFUSED"));
      clock += 50; // ioredis retries about this often
    }
    // 201 errors over 10 s: the first, and the last once the window has passed, counting the 199 between.
    expect(lines.map((l) => [l.msg, l.connection, l.repeated])).toEqual([
      ["redis connection error", "lifeline-keys", undefined],
      ["redis connection error", "lifeline-keys", ERROR_LOG_EVERY_MS / 50 - 1],
    ]);
    client.emit("error", new Error("connect ECONNREFUSED"));
    client.emit("ready");
    expect(lines.slice(2).map((l) => [l.msg, l.repeated])).toEqual([["redis connection ready again", 1]]);
    // A new spell starts afresh: its first error is logged at once.
    client.emit("error", new Error("Connection is closed."));
    expect(lines.slice(3).map((l) => [l.msg, l.err, l.repeated])).toEqual([["redis connection error", "Connection is closed.", undefined]]);
    // A different error within the window is news: logged at once, with the count of the one before.
    client.emit("error", new Error("Connection is closed."));
    client.emit("error", new Error("WRONGPASS invalid username-password pair"));
    expect(lines.slice(4).map((l) => [l.err, l.repeated])).toEqual([["WRONGPASS invalid username-password pair", 1]]);
    client.emit("ready");
    client.emit("ready"); // a ready with no error before it says nothing
    expect(lines).toHaveLength(6);
  });

  it("a real client that cannot reach Redis for a while logs one line, not one per retry, and keeps the process up", async () => {
    const { logger, lines } = capturingLogger();
    // Every connect is refused at once, with the same error, and ioredis tries again.
    const client = connectRedis({ mode: "standalone", url: `redis://127.0.0.1:${await refusedPort()}` }, "lifeline-test", { logger });
    let errors = 0;
    client.on("error", () => (errors += 1));
    try {
      await new Promise((resolve) => setTimeout(resolve, 1500));
    } finally {
      client.disconnect();
    }
    expect(errors).toBeGreaterThan(3);
    expect(
      lines.filter((l) => l.msg === "redis connection error"),
      JSON.stringify(lines),
    ).toHaveLength(1);
    expect(lines[0]).toMatchObject({ connection: "lifeline-test", level: 40 });
  });
});
