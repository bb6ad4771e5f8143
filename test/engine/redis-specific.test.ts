import { Redis } from "ioredis";
import { pino } from "pino";
import { canonicalJson } from "../../src/core/canonical.ts";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { connectRedis } from "../../src/engine/redis/connection.ts";
import { Notifications } from "../../src/engine/redis/notifications.ts";
import { RedisKeys } from "../../src/engine/redis/keys.ts";
import { onlineReplicas, RedisEngine } from "../../src/engine/redis/redis-engine.ts";
import { withScripts } from "../../src/engine/redis/scripts.ts";
import { redisAvailable, requireRedis, startStandalone, type RedisServer } from "../support/redis-harness.ts";
import { startTcpProxy, type TcpProxy } from "../support/tcp-proxy.ts";
import { until } from "../support/waits.ts";

beforeEach((ctx) => requireRedis(ctx));

describe("the redis engine", () => {
  let server: RedisServer | undefined;
  let proxy: TcpProxy | undefined;
  beforeAll(async () => {
    if (!redisAvailable()) return;
    server = await startStandalone();
    proxy = await startTcpProxy(server.port);
  });
  afterAll(async () => {
    await proxy?.close();
    await server?.stop();
  });

  /**
   * A follower probing its subscription every 100 ms, a writer, a plain connection, and Redis's own
   * count of each command. A probe may take 5 s to come back: on a loaded machine one that took
   * over 200 ms would count as lost, wake every wait and distrust what was heard, and the commands
   * counted would count the machine. `proven()` waits for the first probe to come through.
   */
  const engines = (prefix: string) => {
    const follower = new RedisEngine({ target: { mode: "standalone", url: server!.url }, prefix, probeMs: 100, probePatienceMs: 5000 });
    const writer = new RedisEngine({ target: { mode: "standalone", url: server!.url }, prefix });
    const raw = new Redis(server!.url);
    const calls = async (command: string): Promise<number> =>
      Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(await raw.info("commandstats"))?.[1] ?? 0);
    const close = async (): Promise<void> => {
      raw.disconnect();
      await follower.close();
      await writer.close();
    };
    const proven = (): Promise<void> => until(() => follower.subscriptionTrusted, 30_000, "a probe through the follower's subscriber");
    return { follower, writer, raw, calls, heads: () => calls("hmget"), proven, close };
  };
  /** Notifications straight on two connections of their own, batching their subscribes, channels named by `prefix`. */
  const notificationsOf = (prefix: string, options: { probeChannels?: string[]; probeMs?: number; lingerMs?: number } = {}) => {
    const subscriber = connectRedis({ mode: "standalone", url: server!.url }, `${prefix}-sub`);
    const publisher = connectRedis({ mode: "standalone", url: server!.url }, `${prefix}-pub`);
    const notifications = new Notifications({
      subscriber,
      publisher,
      probeChannels: async () => options.probeChannels ?? [],
      channelOf: (id) => `${prefix}:{${id}}:n`,
      idOf: () => undefined,
      batchSubscribes: true,
      ...(options.probeMs === undefined ? {} : { probeMs: options.probeMs }),
      ...(options.lingerMs === undefined ? {} : { lingerMs: options.lingerMs }),
    });
    const close = (): void => {
      notifications.close();
      subscriber.disconnect();
      publisher.disconnect();
    };
    return { notifications, subscriber, close };
  };
  /** Whether `p` settles within 300 ms. */
  const settles = (p: Promise<void>): Promise<boolean> =>
    Promise.race([p.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 300))]);

  it("a finished log expires after the retention time; an open one does not", async () => {
    const prefix = `ttl${process.pid}`;
    const engine = new RedisEngine({ target: { mode: "standalone", url: server!.url }, prefix, retentionSeconds: 1 });
    const raw = new Redis(server!.url);
    try {
      const done = await engine.create({ model: "sim", messages: [{ role: "user", content: "short-lived" }] });
      const open = await engine.create({ model: "sim", messages: [{ role: "user", content: "still running" }] });
      const claim = await engine.claim("w", 60_000, new AbortController().signal);
      expect(claim?.id).toBe(done.id);
      const usage = { promptTokens: 1, completionTokens: 1 };
      await engine.append(done.id, claim!.fence, 2, [{ type: "completed", attempt: claim!.fence, finishReason: "stop", usage }]);
      expect(await raw.ttl(`${prefix}:{${done.id}}:log`)).toBeGreaterThan(0);
      expect(await raw.ttl(`${prefix}:{${open.id}}:log`)).toBe(-1);
      await new Promise((r) => setTimeout(r, 2100));
      expect(await engine.head(done.id)).toBeUndefined();
      expect(await engine.head(open.id)).toMatchObject({ lastOffset: 1 });
    } finally {
      raw.disconnect();
      await engine.close();
    }
  });

  it("a chat's name has no expiry while its generation runs, and expires with the log once it ends", async () => {
    const prefix = `chat${process.pid}`;
    const engine = new RedisEngine({ target: { mode: "standalone", url: server!.url }, prefix, retentionSeconds: 60 });
    const raw = new Redis(server!.url);
    const chatKey = (chatId: string): string => `${prefix}:{chat:${chatId}}`;
    try {
      const older = await engine.create({ model: "sim", messages: [{ role: "user", content: "first question" }] });
      const newer = await engine.create({ model: "sim", messages: [{ role: "user", content: "second question" }] });
      await engine.setChatGeneration("c1", older.id);
      expect(await raw.ttl(chatKey("c1"))).toBe(-1);
      await engine.cancel(older.id); // the answer ends: the name expires with its log
      const ttl = await raw.ttl(chatKey("c1"));
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(60);

      // Named again for a running generation: no expiry, and the older one's end does not give it one.
      await engine.setChatGeneration("c2", older.id);
      await engine.setChatGeneration("c2", newer.id);
      expect(await raw.ttl(chatKey("c2"))).toBe(-1);
      const claim = await engine.claim("w", 60_000, new AbortController().signal);
      expect(claim?.id).toBe(newer.id);
      expect(await raw.ttl(chatKey("c2"))).toBe(-1);
      const usage = { promptTokens: 1, completionTokens: 1 };
      await engine.append(newer.id, claim!.fence, 2, [{ type: "completed", attempt: claim!.fence, finishReason: "stop", usage }]);
      expect(await raw.ttl(chatKey("c2"))).toBeGreaterThan(0);

      // Named after the end: it expires with the log at once; an unknown generation leaves no stray state.
      await engine.setChatGeneration("c3", older.id);
      expect(await raw.ttl(chatKey("c3"))).toBeGreaterThan(0);
      await engine.setChatGeneration("c4", "gen_00000000000000000000000000");
      expect(await raw.ttl(chatKey("c4"))).toBeGreaterThan(0);
      expect(await raw.exists(`${prefix}:{gen_00000000000000000000000000}:meta`)).toBe(0);
    } finally {
      raw.disconnect();
      await engine.close();
    }
  });

  it("an answer's end whose reply was lost finishes its job and its chat's name when the retry comes back a duplicate", async () => {
    const prefix = `lostend${process.pid}`;
    const engine = new RedisEngine({ target: { mode: "standalone", url: server!.url }, prefix, retentionSeconds: 60 });
    const raw = withScripts(new Redis(server!.url));
    const keys = new RedisKeys(prefix);
    try {
      const { id } = await engine.create({ model: "sim", messages: [{ role: "user", content: "an end lost on the wire" }] });
      await engine.setChatGeneration("c1", id);
      const claim = await engine.claim("w", 60_000, new AbortController().signal);
      expect(claim?.id).toBe(id);
      const usage = { promptTokens: 1, completionTokens: 1 };
      const end = [{ type: "completed" as const, attempt: claim!.fence, finishReason: "stop" as const, usage }];
      // The first try: the script ran in Redis, and its reply never reached the worker.
      const first = (await raw.llAppend(
        ...[keys.meta(id), keys.log(id), claim!.fence, 2, 1, new Date().toISOString(), keys.notify(id), 60],
        ...end.map((entry) => canonicalJson(entry)),
      )) as [string, number];
      expect(first[0]).toBe("appended");
      expect(await raw.zscore(keys.leased, id)).not.toBeNull();
      expect(await raw.ttl(keys.chat("c1"))).toBe(-1);

      expect(await engine.append(id, claim!.fence, 2, end)).toEqual({ kind: "duplicate", nextOffset: 3 });
      expect(await raw.zscore(keys.leased, id)).toBeNull();
      expect(await raw.ttl(keys.chat("c1"))).toBeGreaterThan(0);
      const ended = (await engine.changes(undefined, 100)).changes.filter((c) => c.id === id && c.type === "completed");
      expect(ended).toHaveLength(1);
      // A third try changes nothing more: the job's end is noted once.
      expect(await engine.append(id, claim!.fence, 2, end)).toEqual({ kind: "duplicate", nextOffset: 3 });
      expect((await engine.changes(undefined, 100)).changes.filter((c) => c.id === id && c.type === "completed")).toHaveLength(1);
    } finally {
      raw.disconnect();
      await engine.close();
    }
  });

  it("a subscription that silently stops delivering is detected by its probe and re-established", async () => {
    const prefix = `probe${process.pid}`;
    // The follower reaches Redis through the proxy; the writer connects directly.
    const follower = new RedisEngine({ target: { mode: "standalone", url: `redis://127.0.0.1:${proxy!.port}` }, prefix, probeMs: 200 });
    const writer = new RedisEngine({ target: { mode: "standalone", url: server!.url }, prefix });
    try {
      const { id } = await writer.create({ model: "sim", messages: [{ role: "user", content: "probe" }] });
      const claim = await writer.claim("w", 60_000, new AbortController().signal);
      expect(claim?.id).toBe(id);
      // A first wait proves the subscription works and leaves it subscribed.
      const first = follower.wait(id, 1, new AbortController().signal);
      await new Promise((r) => setTimeout(r, 300));
      await writer.append(id, claim!.fence, 2, [{ type: "delta", attempt: claim!.fence, text: "a" }]);
      await first;

      // Now the subscriber's link goes silent: open, but nothing passes.
      expect(proxy!.blackhole("lifeline-sub")).toBe(1);
      const second = follower.wait(id, 2, new AbortController().signal);
      await new Promise((r) => setTimeout(r, 100));
      await writer.append(id, claim!.fence, 3, [{ type: "delta", attempt: claim!.fence, text: "b" }]);
      await second; // resolves only because the probe noticed and the subscription was rebuilt
      expect(follower.subscriptionRecoveries).toBeGreaterThanOrEqual(1);
      expect((await follower.head(id))?.lastOffset).toBe(3);
    } finally {
      await follower.close();
      await writer.close();
    }
  });

  it("a follower that read up to the newest announcement waits with no command; any other position asks the log's head first", async () => {
    const prefix = `quiet${process.pid}`;
    const { follower, writer, raw, heads, proven, close } = engines(prefix);
    try {
      expect(follower.subscriptionTrusted).toBe(false); // nothing heard is trusted before a probe has come through
      const { id } = await writer.create({ model: "sim", messages: [{ role: "user", content: "quiet waits" }] });
      const claim = await writer.claim("w", 60_000, new AbortController().signal);
      const delta = (offset: number): Promise<unknown> =>
        writer.append(id, claim!.fence, offset, [{ type: "delta", attempt: claim!.fence, text: String(offset) }]);
      await proven(); // the follower's subscriber is proven (its probe channels subscribed)
      // Nothing announced yet: the wait asks the head, finds nothing new, and is woken by the append.
      let before = await heads();
      const first = follower.wait(id, 1, new AbortController().signal);
      expect(await settles(first)).toBe(false);
      expect((await heads()) - before).toBe(1);
      await delta(2);
      await first;

      // Read exactly up to the announcement: no head asked, and the next append still wakes it.
      before = await heads();
      const second = follower.wait(id, 2, new AbortController().signal);
      expect(await settles(second)).toBe(false);
      expect((await heads()) - before).toBe(0);
      await delta(3);
      await second;

      // Behind the announcement (a follower that read before it): the head is asked, and it returns at once.
      before = await heads();
      await follower.wait(id, 1, new AbortController().signal);
      expect((await heads()) - before).toBe(1);
      // Ahead of it (it read an entry whose announcement is still on its way): asked, then woken by it.
      await delta(4);
      await delta(5);
      const ahead = follower.wait(id, 5, new AbortController().signal);
      await delta(6);
      await ahead;

      // The subscriber's connection drops (a failover looks so): what it heard is not trusted again,
      // even once it is back, until a probe has come through — the wait at the announcement asks.
      await new Promise((r) => setTimeout(r, 100)); // the announcement of 6 is in
      expect(Number(await raw.client("KILL", "TYPE", "pubsub"))).toBeGreaterThanOrEqual(1);
      await new Promise((r) => setTimeout(r, 50));
      before = await heads();
      const afterDrop = follower.wait(id, 6, new AbortController().signal);
      // It may end early (a recovery wakes every wait, and a wait woken at its own offset ends so
      // its caller checks the entry there); it never ends before asking.
      await settles(afterDrop);
      expect((await heads()) - before).toBeGreaterThanOrEqual(1);
      await delta(7);
      await afterDrop;
    } finally {
      await close();
    }
  });

  it("a read made before a wait subscribes first: the wait after it asks no head, and an append between the two still ends it", async () => {
    const prefix = `first${process.pid}`;
    const { follower, writer, raw, heads, proven, close } = engines(prefix);
    const open = async (): Promise<{ id: string; delta: (offset: number) => Promise<unknown> }> => {
      const { id } = await writer.create({ model: "sim", messages: [{ role: "user", content: "first waits" }] });
      const claim = await writer.claim("w", 60_000, new AbortController().signal);
      expect(claim?.id).toBe(id);
      const delta = (offset: number): Promise<unknown> =>
        writer.append(id, claim!.fence, offset, [{ type: "delta", attempt: claim!.fence, text: String(offset) }]);
      return { id, delta };
    };
    try {
      await proven(); // the follower's subscriber is proven (its probe channels subscribed)

      // A plain read, then a wait: the wait must ask the head (an append may have come in between).
      const plain = await open();
      let before = await heads();
      expect(await follower.read(plain.id, 0, 256)).toHaveLength(1);
      const plainWait = follower.wait(plain.id, 1, new AbortController().signal);
      expect(await settles(plainWait)).toBe(false);
      expect((await heads()) - before).toBe(1);
      await plain.delta(2);
      await plainWait;

      // A read for waiting, then the wait: no head asked, and the next append wakes it.
      const quiet = await open();
      before = await heads();
      expect(await follower.read(quiet.id, 0, 256, { thenWait: true })).toHaveLength(1);
      const quietWait = follower.wait(quiet.id, 1, new AbortController().signal);
      expect(await settles(quietWait)).toBe(false);
      expect((await heads()) - before).toBe(0);
      await quiet.delta(2);
      await quietWait;

      // An append between the read and the wait: the wait ends without being woken again.
      const between = await open();
      expect(await follower.read(between.id, 0, 256, { thenWait: true })).toHaveLength(1);
      await between.delta(2);
      await new Promise((r) => setTimeout(r, 50));
      expect(await settles(follower.wait(between.id, 1, new AbortController().signal))).toBe(true);

      // A full page does not tell where the log ends: the wait after it asks.
      const full = await open();
      await full.delta(2);
      expect(await follower.read(full.id, 0, 1, { thenWait: true })).toHaveLength(1);
      before = await heads();
      expect(await settles(follower.wait(full.id, 1, new AbortController().signal))).toBe(true);
      expect((await heads()) - before).toBe(1);

      // The subscriber's connection drops after the read: what the read saw is not trusted, the wait asks.
      const dropped = await open();
      expect(await follower.read(dropped.id, 0, 256, { thenWait: true })).toHaveLength(1);
      expect(Number(await raw.client("KILL", "TYPE", "pubsub"))).toBeGreaterThanOrEqual(1);
      await new Promise((r) => setTimeout(r, 50));
      before = await heads();
      const afterDrop = follower.wait(dropped.id, 1, new AbortController().signal);
      // It may end early (a recovery wakes every wait, and a wait woken at its own offset ends so
      // its caller checks the entry there); it never ends before asking.
      await settles(afterDrop);
      expect((await heads()) - before).toBeGreaterThanOrEqual(1);
      await dropped.delta(2);
      await afterDrop;
    } finally {
      await close();
    }
  });

  it("a wait whose log a failover cut and another attempt wrote back to exactly its offset ends, so its caller can check the entry there", async () => {
    const prefix = `cut${process.pid}`;
    const { follower, writer, raw, proven, close } = engines(prefix);
    const never = new AbortController().signal;
    try {
      const { id } = await writer.create({ model: "sim", messages: [{ role: "user", content: "cut and written again" }] });
      const first = await writer.claim("w1", 60_000, never);
      await writer.append(id, first!.fence, 2, [
        { type: "started", attempt: first!.fence, worker: "w1", model: "sim" },
        { type: "delta", attempt: first!.fence, text: "old" },
      ]);
      await proven(); // the follower's subscriber is proven (its probe channels subscribed)
      const waiting = follower.wait(id, 3, never);
      await new Promise((r) => setTimeout(r, 100));

      // What a failover that lost entries 2 and 3 leaves; then another attempt writes 2 and 3 in one batch, the last one terminal.
      await raw.xdel(`${prefix}:{${id}}:log`, "2-0", "3-0");
      await raw.xsetid(`${prefix}:{${id}}:log`, "1-0");
      await raw.hset(`${prefix}:{${id}}:meta`, "last", 1);
      await writer.release(id, first!.fence);
      const second = await writer.claim("w2", 60_000, never);
      await writer.append(id, second!.fence, 2, [
        { type: "started", attempt: second!.fence, worker: "w2", model: "sim" },
        { type: "completed", attempt: second!.fence, finishReason: "stop", usage: { promptTokens: 1, completionTokens: 0 } },
      ]);
      const ended = await Promise.race([waiting.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 2000))]);
      expect(ended).toBe(true);
      const [standing] = await follower.read(id, 2, 1);
      expect(standing).toMatchObject({ offset: 3, type: "completed", attempt: second!.fence });
    } finally {
      await close();
    }
  });

  it("a wait whose subscribe Redis refuses does not fail: it looks at the log's head until an append comes, and subscribes again once it can", async () => {
    const prefix = `refused${process.pid}`;
    const { follower, writer, raw, heads, proven, close } = engines(prefix);
    const never = new AbortController().signal;
    try {
      const { id } = await writer.create({ model: "sim", messages: [{ role: "user", content: "no subscriber" }] });
      const claim = await writer.claim("w1", 60_000, never);
      expect(
        await writer.append(id, claim!.fence, 2, [{ type: "started", attempt: claim!.fence, worker: "w1", model: "sim" }]),
      ).toMatchObject({ kind: "appended" });
      await proven(); // the follower's subscriber is proven (its probe channels subscribed)
      // What a Cluster's client answers while it rebuilds its sharded subscribers: the subscribe fails.
      await raw.acl("SETUSER", "default", "-ssubscribe");
      try {
        const waiting = follower.wait(id, 2, never);
        expect(await settles(waiting)).toBe(false); // parked, not failed
        await writer.append(id, claim!.fence, 3, [{ type: "delta", attempt: claim!.fence, text: "still heard" }]);
        const ended = await Promise.race([waiting.then(() => "ended"), new Promise<string>((r) => setTimeout(() => r("parked"), 3000))]);
        expect(ended).toBe("ended");
      } finally {
        await raw.acl("SETUSER", "default", "+ssubscribe");
      }
      // Subscribed again: the wait parks without looking at the head, and the next append is announced.
      const next = follower.wait(id, 3, never);
      await new Promise((r) => setTimeout(r, 300));
      const headsParked = await heads();
      await new Promise((r) => setTimeout(r, 600));
      expect(await heads()).toBe(headsParked);
      await writer.append(id, claim!.fence, 4, [{ type: "delta", attempt: claim!.fence, text: "announced" }]);
      expect(await settles(next)).toBe(true);
    } finally {
      await raw.acl("SETUSER", "default", "+ssubscribe");
      await close();
    }
  });

  it("a wait given up while its subscribe is unanswered ends at once", async () => {
    const prefix = `unanswered${process.pid}`;
    const { follower, writer, raw, close } = engines(prefix);
    try {
      const { id } = await writer.create({ model: "sim", messages: [{ role: "user", content: "paused" }] });
      await raw.client("PAUSE", 1000, "ALL");
      const controller = new AbortController();
      const waiting = follower.wait(id, 1, controller.signal);
      await new Promise((r) => setTimeout(r, 100));
      controller.abort();
      expect(await settles(waiting)).toBe(true); // Redis is still paused
    } finally {
      await close();
    }
  });

  it("a read is trusted only while the subscriber is connected and proven: not once it drops, nor with a ticket taken before the drop", async () => {
    const prefix = `ticket${process.pid}`;
    const {
      notifications,
      subscriber,
      close: closeNotifications,
    } = notificationsOf(prefix, { probeChannels: [`${prefix}:probe`], probeMs: 50 });
    const raw = new Redis(server!.url);
    const proven = async (): Promise<void> => {
      // The subscriber is back and a probe came through: a fresh ticket is given again.
      for (let i = 0; i < 200 && !notifications.trusted; i++) await new Promise((r) => setTimeout(r, 10));
      expect(notifications.trusted).toBe(true);
    };
    try {
      await notifications.hold("g");
      await proven();
      const early = notifications.readTicket("g");
      expect(early).toBeDefined();
      notifications.noteRead("g", early!, 3);
      expect(notifications.announced("g")).toBe(3);

      // Between the drop and the reconnect no ticket is given, and nothing noted before is trusted.
      const stale = notifications.readTicket("g");
      let ticketWhileDown: unknown = "not asked";
      const closed = new Promise<void>((resolve) =>
        subscriber.once("close", () => {
          ticketWhileDown = notifications.readTicket("g");
          resolve();
        }),
      );
      expect(Number(await raw.client("KILL", "TYPE", "pubsub"))).toBeGreaterThanOrEqual(1);
      await closed;
      await proven();
      expect(ticketWhileDown).toBeUndefined();
      expect(notifications.announced("g")).toBeUndefined();
      // A read sent before the drop and answered after it notes nothing.
      notifications.noteRead("g", stale!, 5);
      expect(notifications.announced("g")).toBeUndefined();
      // One sent now does.
      notifications.noteRead("g", notifications.readTicket("g")!, 6);
      expect(notifications.announced("g")).toBe(6);
    } finally {
      closeNotifications();
      raw.disconnect();
    }
  });

  it("channels subscribed in one turn share one SSUBSCRIBE, and those let go in one sweep one SUNSUBSCRIBE; every waiter still wakes", async () => {
    const prefix = `batch${process.pid}`;
    const { follower, writer, raw, calls, proven, close } = engines(prefix);
    const COUNT = 40;
    try {
      const ids: string[] = [];
      for (let i = 0; i < COUNT; i++)
        ids.push((await writer.create({ model: "sim", messages: [{ role: "user", content: `batch ${i}` }] })).id);
      await proven(); // the follower's subscriber is proven (its probe channels subscribed)
      const before = await calls("ssubscribe");
      const pages = await Promise.all(ids.map((id) => follower.read(id, 0, 256, { thenWait: true })));
      expect(pages.every((page) => page.length === 1)).toBe(true);
      // One (forty before); a probe lost on a loaded machine would resubscribe everything once more.
      expect((await calls("ssubscribe")) - before).toBeLessThanOrEqual(2);
      const waits = ids.map((id) => follower.wait(id, 1, new AbortController().signal));
      for (let i = 0; i < COUNT; i++) {
        const claim = await writer.claim("w", 60_000, new AbortController().signal);
        await writer.append(claim!.id, claim!.fence, 2, [{ type: "started", attempt: claim!.fence, worker: "w", model: "sim" }]);
      }
      await Promise.all(waits);
    } finally {
      await follower.close();
      await writer.close();
    }

    // Let go together, unsubscribed together (a short linger, straight on the notifications).
    const { notifications, close: closeNotifications } = notificationsOf(prefix, { lingerMs: 50 });
    try {
      const ids = Array.from({ length: COUNT }, (_, i) => `g${i}`);
      await Promise.all(ids.map((id) => notifications.hold(id)));
      const before = await calls("sunsubscribe");
      for (const id of ids) notifications.release(id);
      await new Promise((r) => setTimeout(r, 200));
      expect((await calls("sunsubscribe")) - before).toBe(1);
      const [, listeners] = (await raw.call("PUBSUB", "SHARDNUMSUB", `${prefix}:{g0}:n`)) as [string, number];
      expect(listeners).toBe(0);
    } finally {
      closeNotifications();
      await close(); // the engines are closed already (closing again is nothing); the plain connection now
    }
  });

  it("channels asked for, one per turn, while an SSUBSCRIBE is unanswered go together in the next one", async () => {
    const prefix = `inflight${process.pid}`;
    const { notifications, subscriber, close: closeNotifications } = notificationsOf(prefix);
    const raw = new Redis(server!.url);
    const calls = async (): Promise<number> => Number(/cmdstat_ssubscribe:calls=(\d+)/.exec(await raw.info("commandstats"))?.[1] ?? 0);
    try {
      await subscriber.ping();
      const before = await calls();
      await raw.client("PAUSE", 1000, "ALL"); // the first SSUBSCRIBE stays unanswered meanwhile
      const held = [notifications.hold("first")];
      for (let i = 0; i < 20; i++) {
        await new Promise((r) => setTimeout(r, 5)); // each in a turn of its own, as follows opened over HTTP arrive
        held.push(notifications.hold(`later${i}`));
      }
      await Promise.all(held);
      // Two (twenty-one before); three, should the pause end before the twenty turns did.
      expect((await calls()) - before).toBeLessThanOrEqual(3);
    } finally {
      closeNotifications();
      raw.disconnect();
    }
  });

  it("idle claimers park behind one watcher: a job from elsewhere costs a few claim scripts, not one per claimer; a burst reaches every claimer", async () => {
    const prefix = `watch${process.pid}`;
    const worker = new RedisEngine({ target: { mode: "standalone", url: server!.url }, prefix });
    const producer = new RedisEngine({ target: { mode: "standalone", url: server!.url }, prefix });
    const admin = new Redis(server!.url);
    const stop = new AbortController();
    // Only the claim script runs ZRANGEBYSCORE: Redis counts the commands scripts run.
    const claimScripts = async (): Promise<number> =>
      Number(/cmdstat_zrangebyscore:calls=(\d+)/.exec(await admin.info("commandstats"))?.[1] ?? 0);
    try {
      expect(worker.parallelClaims).toBeGreaterThanOrEqual(64);
      const claimers = Array.from({ length: worker.parallelClaims }, () => worker.claim("w", 60_000, stop.signal));
      await new Promise((resolve) => setTimeout(resolve, 300)); // every claimer looked once and parked
      const before = await claimScripts();
      const { id } = await producer.create({ model: "sim", messages: [{ role: "user", content: "one job" }] });
      const first = await Promise.race(claimers);
      expect(first?.id).toBe(id);
      await new Promise((resolve) => setTimeout(resolve, 300));
      // The watcher's claim, and the claimer it woke to watch in its place (each BLPOP timeout adds one).
      expect((await claimScripts()) - before).toBeLessThanOrEqual(4);

      // A burst: every other claimer is woken by the claims that find more jobs waiting, long before
      // a parked claimer would look for itself (10 s).
      const rest = claimers.length - 1;
      const created = await Promise.all(
        Array.from({ length: rest }, (_, i) => producer.create({ model: "sim", messages: [{ role: "user", content: `burst ${i}` }] })),
      );
      const timeout = new Promise<"late">((resolve) => setTimeout(() => resolve("late"), 8000).unref());
      const claimed = await Promise.race([Promise.all(claimers), timeout]);
      expect(claimed).not.toBe("late");
      const ids = (claimed as { id: string }[]).map((claim) => claim.id);
      expect(new Set(ids).size).toBe(claimers.length);
      expect(ids.sort()).toEqual([id, ...created.map((c) => c.id)].sort());
    } finally {
      stop.abort();
      admin.disconnect();
      await worker.close();
      await producer.close();
    }
  });

  it("the claimers of one engine share one BLPOP: idle, nothing piles up on the blocking connection, and a job from elsewhere reaches one of them", async () => {
    const prefix = `blpop${process.pid}`;
    const worker = new RedisEngine({ target: { mode: "standalone", url: server!.url }, prefix });
    const producer = new RedisEngine({ target: { mode: "standalone", url: server!.url }, prefix });
    const admin = new Redis(server!.url);
    const stop = new AbortController();
    try {
      const claims = Array.from({ length: worker.parallelClaims }, () => worker.claim("w", 60_000, stop.signal));
      await new Promise((resolve) => setTimeout(resolve, 3500)); // several BLPOP timeouts go by
      const blocking = ((await admin.client("LIST")) as string)
        .split("\n")
        .filter((line) => line.includes("name=lifeline-claim") && line.includes("cmd=blpop"));
      expect(blocking).toHaveLength(1);
      // One command at most is waiting on that connection: no BLPOPs queued behind it.
      expect(blocking[0]).toMatch(/ qbuf=0 /);

      const { id } = await producer.create({ model: "sim", messages: [{ role: "user", content: "from elsewhere" }] });
      const first = await Promise.race(claims);
      expect(first?.id).toBe(id);
    } finally {
      stop.abort();
      admin.disconnect();
      await worker.close();
      await producer.close();
    }
  });
});

describe("the replicas a WAIT can count on", () => {
  it("are those INFO shows online: not one still loading its copy, whatever connected_slaves says", () => {
    const info = [
      "# Replication",
      "role:master",
      "connected_slaves:3",
      "slave0:ip=127.0.0.1,port=7001,state=online,offset=1234,lag=0",
      "slave1:ip=127.0.0.1,port=7002,state=wait_bgsave,offset=0,lag=0",
      "slave2:ip=127.0.0.1,port=7003,state=online,offset=1200,lag=1",
      "master_repl_offset:1234",
    ].join("\r\n");
    expect(onlineReplicas(info)).toBe(2);
    expect(onlineReplicas("# Replication\r\nrole:master\r\nconnected_slaves:0\r\n")).toBe(0);
  });
});

describe("a replica that stops confirming writes", () => {
  let primary: RedisServer | undefined;
  let replica: RedisServer | undefined;
  beforeAll(async () => {
    if (!redisAvailable()) return;
    primary = await startStandalone();
    replica = await startStandalone({ args: ["--replicaof", "127.0.0.1", String(primary.port)] });
    const watch = new Redis(replica.url);
    try {
      await until(async () => /master_link_status:up/.test(await watch.info("replication")), 20_000, "the replica in sync");
    } finally {
      watch.disconnect();
    }
  });
  afterAll(async () => {
    if (replica?.isRunning()) process.kill(replica.pid, "SIGCONT");
    await replica?.stop();
    await primary?.stop();
  });

  it("holds neither deltas nor lease renewals behind its WAITs, and callers that come together share one WAIT", async () => {
    const prefix = `stuck${process.pid}`;
    // The primary still lists a stopped replica online (until its repl-timeout): every WAIT runs out.
    const engine = new RedisEngine({ target: { mode: "standalone", url: primary!.url }, prefix, waitReplicas: 1, waitTimeoutMs: 4000 });
    const raw = new Redis(primary!.url);
    const waits = async (): Promise<number> => Number(/cmdstat_wait:calls=(\d+)/.exec(await raw.info("commandstats"))?.[1] ?? 0);
    try {
      const running = await engine.create({ model: "sim", messages: [{ role: "user", content: "still streaming" }] });
      const claim = await engine.claim("w", 60_000, new AbortController().signal);
      expect(claim?.id).toBe(running.id);
      const queued: string[] = [];
      for (let i = 0; i < 10; i++)
        queued.push((await engine.create({ model: "sim", messages: [{ role: "user", content: `queued ${i}` }] })).id);
      const waitsBefore = await waits();

      process.kill(replica!.pid, "SIGSTOP");
      let settled = 0;
      const cancels = queued.map((id) => engine.cancel(id).finally(() => (settled += 1)));
      await until(async () => /blocked_clients:[1-9]/.test(await raw.info("clients")), 10_000, "a WAIT blocked on the primary");

      expect(await engine.renew(running.id, claim!.fence, 60_000)).toBe("renewed");
      expect(await engine.append(running.id, claim!.fence, 2, [{ type: "delta", attempt: claim!.fence, text: "on time" }])).toEqual({
        kind: "appended",
        nextOffset: 3,
      });
      expect(settled, "a cancel ended before the delta: its WAIT did not hold the delta").toBe(0);

      expect(await Promise.all(cancels)).toEqual(queued.map(() => "cancelled"));
      expect(await waits()).toBeLessThanOrEqual(waitsBefore + 2);
    } finally {
      process.kill(replica!.pid, "SIGCONT");
      raw.disconnect();
      await engine.close();
    }
  });

  it("a claim whose connection is cut while its WAIT waits hands out no fence the new connection's WAIT did not confirm", async () => {
    const prefix = `cut${process.pid}`;
    const proxy = await startTcpProxy(primary!.port);
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: "warn" }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
    const target = { mode: "standalone" as const, url: `redis://127.0.0.1:${proxy.port}` };
    const engine = new RedisEngine({ target, prefix, waitReplicas: 1, waitTimeoutMs: 30_000, logger });
    const raw = new Redis(primary!.url);
    try {
      const { id } = await engine.create({ model: "sim", messages: [{ role: "user", content: "claimed across a cut" }] });
      process.kill(replica!.pid, "SIGSTOP");
      const claim = engine.claim("w", 60_000, new AbortController().signal);
      await until(async () => /blocked_clients:[1-9]/.test(await raw.info("clients")), 10_000, "the claim's WAIT blocked on the primary");
      // The client sends the unanswered WAIT again on its new connection, where it counts no write and returns at once.
      expect(proxy.cut("lifeline-durable")).toBe(1);
      await new Promise((resolve) => setTimeout(resolve, 300));
      process.kill(replica!.pid, "SIGCONT");
      const claimed = await claim;
      expect(claimed?.id).toBe(id);
      // The fence raised before the cut was handed back; the one handed out was confirmed after it.
      expect(claimed?.fence).toBe(2);
      expect(lines.some((line) => String(line.msg).includes("a connection closed between a write and its WAIT"))).toBe(true);
    } finally {
      process.kill(replica!.pid, "SIGCONT");
      raw.disconnect();
      await engine.close();
      await proxy.close();
    }
  });
});
