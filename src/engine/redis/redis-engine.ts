import { setMaxListeners } from "node:events";
import { setTimeout as pause } from "node:timers/promises";
import { createdEntry, idempotencyName } from "../created-entry.ts";
import calculateSlot from "cluster-key-slot";
import { probeChannels } from "./probe-channels.ts";
import { Cluster, type Redis } from "ioredis";
import { canonicalJson } from "../../core/canonical.ts";
import { isTerminal, stampEntry, type Entry, type EntryBody, type EntryType, type GenerationRequest } from "../../core/entries.ts";
import type { Logger } from "../../observability/logger.ts";
import { assertWellFormedBatch, endsWithTerminal } from "../append-rules.ts";
import { newGenerationId } from "../ids.ts";
import type {
  AppendResult,
  CancelResult,
  ChangesPage,
  Claim,
  CreateOptions,
  CreateResult,
  Engine,
  GenerationsPage,
  Lease,
  LogHead,
  ReadOptions,
  RenewResult,
} from "../port.ts";
import { Wakeups } from "../wakeups.ts";
import { connectRedis, type RedisClient, type RedisTarget } from "./connection.ts";
import { RedisFeed } from "./feed.ts";
import { RedisKeys } from "./keys.ts";
import { Notifications } from "./notifications.ts";
import { withScripts, type ScriptedClient } from "./scripts.ts";

const HELD = (): boolean => true;
const NOT_HELD = (): boolean => false;

export interface RedisEngineOptions {
  readonly target: RedisTarget;
  /** Prefix of every key. @defaultValue "ll" */
  readonly prefix?: string;
  /** Seconds a finished log (and an idempotency key) is kept. @defaultValue 86400 */
  readonly retentionSeconds?: number;
  /** Interval of subscription probes. @defaultValue 2000 */
  readonly probeMs?: number;
  /** How long a subscription probe may take to come back before the subscription counts as broken. @defaultValue twice `probeMs` */
  readonly probePatienceMs?: number;
  /**
   * Replicas that must hold a create, a claim and an answer's end before they count (WAIT), so a
   * failover cannot silently undo them. Capped by the replicas connected now; on a Cluster, by the
   * replicas of each shard written to, and asked of each such shard's primary.
   * @defaultValue 1 with Sentinel or a Cluster, else 0
   */
  readonly waitReplicas?: number;
  /** Longest WAIT for those replicas. @defaultValue 500 */
  readonly waitTimeoutMs?: number;
  readonly logger?: Logger;
}

/** Longest a blocked claimer sleeps before it looks again (a lost wake-up costs at most this). */
const MAX_CLAIM_SLEEP_MS = 1000;
/** Longest a claimer parked behind the watcher sleeps before it looks for itself (only a lost wake-up needs it). */
const FOLLOWER_SLEEP_MS = 10_000;
/** How often a wait whose subscribe failed looks at the log's head and tries again: this to twice this. */
const SUBSCRIBE_RETRY_MS = 250;
/** A failing subscribe is logged at most once in this long. */
const SUBSCRIBE_WARN_EVERY_MS = 10_000;

/**
 * The distributed engine: one Redis Stream per generation (entry ID `<offset>-0`), its state in a
 * hash beside it, every key of one generation under one hash tag; fenced appends, cancels and
 * claims as named Lua scripts; live delivery through sharded pub/sub. Runs on one Redis, on a
 * Sentinel-watched primary, and on Redis Cluster.
 */
export class RedisEngine implements Engine {
  readonly kind = "redis";
  readonly replicatesAsynchronously = true;
  /**
   * A claim is two round trips and may wait for a replica's confirmation (WAIT): many in flight,
   * pipelined together, start a burst sooner (1,000 queued jobs: 3,500–5,800 claims/s with 4,
   * 7,100–7,500 with 16 on an idle process; on a worker busy streaming, where each round trip
   * waits for its event loop, 16 took 10 s and 128 took 4.5 s to start 1,000 answers: decision 043).
   * Idle, all but one of them park ({@link claim}).
   */
  readonly parallelClaims = 128;
  /** The BLPOP on the blocking connection that this process's watching claimer waits on, while one is out. */
  #blpop: Promise<unknown> | undefined;
  /** Whether one of this process's claimers watches the queue (the others park: {@link claim}). */
  #watching = false;
  readonly #keys: RedisKeys;
  readonly #retention: number;
  readonly #feed: RedisFeed;
  readonly #commands: ScriptedClient;
  /**
   * The connection of the writes a WAIT confirms (a create, a claim's fence, a cancel, an answer's
   * end, a chat's name) and of their WAITs: a WAIT counts its own connection's writes and holds that
   * connection until it returns, so on the command connection a replica that stops confirming would
   * hold every delta and lease renewal behind it. The command connection itself when no WAIT is made.
   */
  readonly #durable: ScriptedClient;
  readonly #blocking: RedisClient;
  readonly #subscriber: RedisClient;
  readonly #notifications: Notifications;
  readonly #closing = new AbortController();
  readonly #wakeups = new Wakeups();
  readonly #waitReplicas: number;
  readonly #waitTimeoutMs: number;
  readonly #logger: Logger | undefined;
  #subscribeWarnedAt = Number.NEGATIVE_INFINITY;
  /** The replicas connected to each primary written to (one entry, "", unless on a Cluster), read from INFO at most once a second. */
  readonly #replicas = new Map<string, { count: number; checkedAt: number }>();
  /** The WAIT unanswered on each primary (keyed as {@link #replicas}): a caller that comes while it waits shares it. */
  readonly #waits = new Map<string, Promise<boolean>>();
  /**
   * Connections of {@link #durable} closed so far (any of its nodes on a Cluster). A WAIT counts the
   * writes of its own connection: one sent, or sent again by the client, on a new connection after
   * the write's was lost counts none of them and returns at once. A write is confirmed only when
   * none closed between it and its WAIT's answer.
   */
  #durableCloses = 0;

  constructor(options: RedisEngineOptions) {
    // Every claim in flight listens to it (a worker keeps up to 128): not a leak, so no warning past ten.
    setMaxListeners(0, this.#closing.signal);
    this.#logger = options.logger;
    this.#waitReplicas = options.waitReplicas ?? (options.target.mode === "standalone" ? 0 : 1);
    this.#waitTimeoutMs = options.waitTimeoutMs ?? 500;
    this.#keys = new RedisKeys(options.prefix ?? "ll");
    this.#retention = options.retentionSeconds ?? 86_400;
    const logger = options.logger;
    this.#commands = withScripts(connectRedis(options.target, "lifeline", { writePerTurn: true, logger }));
    this.#durable =
      this.#waitReplicas > 0
        ? withScripts(connectRedis(options.target, "lifeline-durable", { writePerTurn: true, logger }))
        : this.#commands;
    if (this.#durable !== this.#commands) {
      const closed = (): void => void (this.#durableCloses += 1);
      if (this.#durable instanceof Cluster) this.#durable.on("+node", (node: Redis) => node.on("close", closed));
      else this.#durable.on("close", closed);
    }
    this.#blocking = connectRedis(options.target, "lifeline-claim", { logger });
    this.#subscriber = connectRedis(options.target, "lifeline-sub", { logger });
    for (const client of this.#clients()) {
      // A client that ends while the engine is open (ioredis gives up in some failover races) is
      // brought back, or every later command would fail with "Connection is closed".
      client.on("end", () => {
        if (this.#closing.signal.aborted) return;
        options.logger?.error("a redis connection ended; reconnecting");
        setTimeout(() => void client.connect().catch(() => undefined), 200).unref();
      });
    }
    this.#feed = new RedisFeed({
      commands: this.#commands,
      keys: this.#keys,
      target: options.target,
      retentionMs: this.#retention * 1000,
      ...(options.logger ? { logger: options.logger } : {}),
    });
    const prefix = `${this.#keys.prefix}:{`;
    this.#notifications = new Notifications({
      subscriber: this.#subscriber,
      publisher: this.#commands,
      channelOf: (id) => this.#keys.notify(id),
      idOf: (channel) => (channel.startsWith(prefix) && channel.endsWith("}:n") ? channel.slice(prefix.length, -3) : undefined),
      probeChannels: () => probeChannels(this.#commands, this.#keys, "probe"),
      probeMs: options.probeMs ?? 2000,
      ...(options.probePatienceMs === undefined ? {} : { probePatienceMs: options.probePatienceMs }),
      trustAnnouncements: options.target.mode !== "cluster",
      batchSubscribes: options.target.mode !== "cluster",
      ...(options.logger ? { logger: options.logger } : {}),
    });
  }

  /** Whether announcements are trusted: not on a Cluster, and only while the subscriber is connected and proven by a probe. */
  get subscriptionTrusted(): boolean {
    return this.#notifications.trusted;
  }

  /** Subscription recoveries after failed probes, for tests and metrics. */
  get subscriptionRecoveries(): number {
    return this.#notifications.recoveries;
  }

  async findCreated(request: GenerationRequest, options: CreateOptions): Promise<Exclude<CreateResult, { kind: "created" }> | undefined> {
    const key = idempotencyName(options);
    const parsed = key === undefined ? undefined : await this.#seenKey(key);
    if (!parsed) return undefined;
    if (parsed.request !== canonicalJson(request)) return { kind: "idempotencyConflict", id: parsed.id };
    // A create cut off between its two steps named an id but made no log: nothing to answer with
    // (a later `create` completes it).
    return (await this.head(parsed.id)) === undefined ? undefined : { kind: "existing", id: parsed.id };
  }

  /** The generation and request an idempotency key was first used for; `undefined` when it is new (or expired). */
  async #seenKey(key: string): Promise<{ readonly id: string; readonly request: string } | undefined> {
    const seen = await this.#commands.get(this.#keys.idempotency(key));
    return seen ? (JSON.parse(seen) as { id: string; request: string }) : undefined;
  }

  async create(request: GenerationRequest, options: CreateOptions = {}): Promise<CreateResult> {
    const since = this.#durableCloses;
    let id = newGenerationId();
    let kind: CreateResult["kind"] = "created";
    const key = idempotencyName(options);
    if (key !== undefined) {
      const requestJson = canonicalJson(request);
      const stored = JSON.stringify({ id, request: requestJson });
      const set = await this.#durable.set(this.#keys.idempotency(key), stored, "EX", this.#retention, "NX");
      if (set === null) {
        const parsed = await this.#seenKey(key);
        if (!parsed) return this.create(request, options); // expired between the two calls
        if (parsed.request !== requestJson) return { kind: "idempotencyConflict", id: parsed.id };
        id = parsed.id;
        kind = "existing";
      }
    }
    // Both steps are idempotent, so a retried or repeated create completes a half-done one.
    const body = createdEntry(request, options);
    await this.#durable.llCreate(this.#keys.meta(id), this.#keys.log(id), canonicalJson(body), new Date().toISOString());
    if (kind === "created" || !(await this.#isTerminal(id))) await this.#enqueue(id);
    const written = [this.#keys.meta(id), this.#keys.ready];
    if (key !== undefined) written.push(this.#keys.idempotency(key));
    await this.#replicate(since, ...written);
    return { kind, id };
  }

  async append(id: string, fence: number, expectedOffset: number, entries: readonly EntryBody[]): Promise<AppendResult> {
    assertWellFormedBatch(entries);
    const ends = endsWithTerminal(entries);
    const since = this.#durableCloses;
    const result = (await (ends ? this.#durable : this.#commands).llAppend(
      this.#keys.meta(id),
      this.#keys.log(id),
      fence,
      expectedOffset,
      ends ? 1 : 0,
      new Date().toISOString(),
      this.#keys.notify(id),
      this.#retention,
      ...entries.map((entry) => canonicalJson(entry)),
    )) as [string, number];
    const [kind, n] = result;
    switch (kind) {
      case "appended":
      case "duplicate":
        if (ends) {
          // The end of an answer must outlive a failover: replicate, then make sure it stands. A
          // duplicate end is a retry whose first try may have stopped before these steps (its
          // reply lost): they are idempotent, so they run again.
          await this.#replicate(since, this.#keys.meta(id));
          const head = await this.#headOn(this.#durable, id); // where the end was written (Sentinel may be moving the primary)
          if (!head?.terminal) return { kind: "offsetConflict", lastOffset: head?.lastOffset ?? 0 };
          await this.#lease("finish", id, entries.at(-1)!.type);
          await this.#chatNameEnds(id);
        } else {
          // A retry or a rewind is rare and worth one more command; a delta never costs one. The
          // feed is read at least once: a duplicate's record (its first try's reply lost) may be a second.
          for (const entry of entries) if (entry.type === "retrying" || entry.type === "rewind") await this.#feed.record(id, entry.type);
        }
        return { kind, nextOffset: Number(n) };
      case "staleFence":
        return { kind, fence: Number(n) };
      case "offsetConflict":
      case "closed":
        return { kind, lastOffset: Number(n) };
      default:
        return { kind: "notFound" };
    }
  }

  /**
   * A read for waiting subscribes to the log's channel first (or finds it subscribed): a page that
   * ends short of `limit` then tells where the log ended while the subscription stood, and the wait
   * at that offset needs no head (decision 045). Held for the read only; it lingers for the wait.
   * Only while the subscriber is proven: a subscribe that fails leaves a plain read.
   */
  async read(id: string, afterOffset: number, limit: number, options?: ReadOptions): Promise<Entry[]> {
    const notifications = this.#notifications;
    const holds = options?.thenWait === true && notifications.trusted && (await notifications.hold(id).then(HELD, NOT_HELD));
    let gone = false;
    let rows: [string, string[]][];
    try {
      const ticket = notifications.readTicket(id);
      rows = await this.#commands.xrange(this.#keys.log(id), `${afterOffset + 1}-0`, "+", "COUNT", limit);
      if (ticket && rows.length > 0 && rows.length < limit) notifications.noteRead(id, ticket, Number(rows.at(-1)![0].split("-")[0]));
      // Every log holds its `created` entry: nothing after 0 is a log that is not there (an unknown id).
      gone = afterOffset === 0 && rows.length === 0;
    } finally {
      if (holds) notifications.release(id, !gone);
    }
    return rows.map(([streamId, fields]) => {
      let body = "";
      let at = "";
      for (let i = 0; i < fields.length; i += 2) {
        if (fields[i] === "b") body = fields[i + 1] ?? "";
        else if (fields[i] === "at") at = fields[i + 1] ?? "";
      }
      return stampEntry(JSON.parse(body) as EntryBody, Number(streamId.split("-")[0]), at);
    });
  }

  head(id: string): Promise<LogHead | undefined> {
    return this.#headOn(this.#commands, id);
  }

  async #headOn(client: RedisClient, id: string): Promise<LogHead | undefined> {
    const [last, terminal] = await client.hmget(this.#keys.meta(id), "last", "terminal");
    if (last === null || last === undefined) return undefined;
    return { lastOffset: Number(last), terminal: terminal === "1" };
  }

  async wait(id: string, afterOffset: number, signal: AbortSignal): Promise<void> {
    const notifications = this.#notifications;
    if (signal.aborted) return;
    // The caller read exactly up to the newest announcement of a subscription that stands: every
    // later append will be announced, so there is no head to ask (a follower at the end of a log
    // waits with no command at all, once per entry).
    let ask = notifications.announced(id) !== afterOffset;
    if (!(await this.#holdForWait(id, afterOffset, signal))) return;
    try {
      let woken = false;
      /** What woke this wait last: the offset its notification announced (undefined: a recovery woke it). */
      let wokenAt: number | undefined;
      while (!signal.aborted && !this.#closing.signal.aborted) {
        const since = notifications.heard(id);
        const parked = notifications.park(id, signal);
        try {
          if (ask) {
            const head = await this.head(id);
            if (!head || head.lastOffset > afterOffset) return;
            // Woken, yet shorter than what the caller read: a failover lost entries, and another
            // attempt writes below the caller's position. The caller looks at each such append.
            if (woken && head.lastOffset < afterOffset) return;
            // Woken at exactly the caller's offset by its announcement, or by a recovery (which may
            // have missed one): another attempt may have written the log back to there, ending it
            // with a different entry; the caller checks the entry it stands on. A late notification
            // of an older append (the caller read past it) parks again.
            if (woken && head.lastOffset === afterOffset && (wokenAt === undefined || wokenAt >= afterOffset)) return;
          }
          await parked.woken;
        } finally {
          parked.done();
        }
        woken = true;
        ask = true;
        wokenAt = notifications.announcedSince(id, since);
        // A notification carries the offset its append committed: past ours, there is no need to
        // read the head again (in a failover the reader may then find less, and waits again). A
        // wake without one (a recovery) reads the head.
        if ((wokenAt ?? 0) > afterOffset) return;
      }
    } finally {
      notifications.release(id);
    }
  }

  /**
   * Holds `id`'s channel for a wait (true). A subscribe that fails does not fail the wait — a
   * Cluster's client answers "No sharded subscriber for slot" while it rebuilds its subscribers
   * after a failover: the wait looks at the log's head every 250–500 ms instead, and subscribes
   * again, until the log moves past `afterOffset` or away from it (false: the caller reads), or the
   * wait is given up (false), even with a subscribe unanswered (a connection that is down).
   */
  async #holdForWait(id: string, afterOffset: number, signal: AbortSignal): Promise<boolean> {
    const notifications = this.#notifications;
    if (notifications.holdStanding(id)) return true; // no promise, no listener: a follower's wait at every entry
    const closing = this.#closing.signal;
    for (;;) {
      const hold = notifications.hold(id).then(HELD);
      try {
        if (await untilAborted(hold, signal, closing)) return true;
        // Given up first: the hold, when it comes, is let go.
        hold.then(() => notifications.release(id), NOT_HELD);
        return false;
      } catch (error) {
        this.#subscribeFailed(error);
      }
      await untilAborted(pause(SUBSCRIBE_RETRY_MS * (1 + Math.random()), undefined, { ref: false }), signal, closing);
      if (signal.aborted || closing.aborted) return false;
      try {
        const head = await this.head(id);
        if (head?.lastOffset !== afterOffset) return false;
      } catch (error) {
        this.#subscribeFailed(error); // the head too, as a Cluster rebuilds: both are tried again
      }
    }
  }

  /** A subscribe or head read that failed, logged at most once every `SUBSCRIBE_WARN_EVERY_MS`. */
  #subscribeFailed(error: unknown): void {
    const now = Date.now();
    if (now - this.#subscribeWarnedAt < SUBSCRIBE_WARN_EVERY_MS) return;
    this.#subscribeWarnedAt = now;
    this.#logger?.warn({ err: (error as Error).message }, "a subscribe failed; waits look at the log's head until it succeeds");
  }

  /**
   * One claimer of this process at a time watches the queue (its `BLPOP`, or its timeout for
   * expiring leases); the others park until a claim finds more jobs than it took and wakes as many
   * of them, so a burst is taken up by every claimer at once and a quiet queue costs one script per
   * signal, not one per claimer (decision 043).
   */
  async claim(_worker: string, leaseMs: number, signal: AbortSignal): Promise<Claim | undefined> {
    const k = this.#keys;
    while (!signal.aborted && !this.#closing.signal.aborted) {
      // A claim queued on a connection that is down would outlive close(): ioredis drops a closed
      // client's offline queue without settling it. Closing ends the claim instead.
      const reply = await untilAborted(
        this.#commands.llClaim(k.ready, k.leased, k.order, k.changes, leaseMs, this.#retention * 1000),
        this.#closing.signal,
      );
      if (reply === undefined) return undefined;
      const [id, info, more] = reply as [string | null, number, number?];
      if (id) {
        // The jobs still claimable, and a watcher when none is left watching: parked claimers take them up.
        this.#wakeups.wake("claim", Number(more ?? 0) + (this.#watching ? 0 : 1));
        const since = this.#durableCloses;
        const fence = Number(await this.#durable.llLeaseCheck(k.meta(id), "raise", 0));
        if (fence > 0) {
          // A fence a failover could roll back might be handed out twice: hand it out only once a
          // replica holds it; otherwise give the job back and try again shortly.
          // The fence is what must not be handed out twice; a lost queue write only queues the job again.
          if (await this.#replicate(since, k.meta(id))) return { id, fence, takeover: Number(info) === 1 };
          await this.#lease("release", id);
          await new Promise((r) => setTimeout(r, 200));
          continue;
        }
        await this.#lease("finish", id, await this.#endOf(id)); // finished (or expired) while it sat on the queue
        continue;
      }
      if (this.#watching) {
        // Another claimer watches the queue: park until a claim finds more work (or, should a wake
        // ever be lost, look again after a while).
        await this.#wakeups.next("claim", signal, FOLLOWER_SLEEP_MS);
        continue;
      }
      this.#watching = true;
      const sleepMs = Math.min(MAX_CLAIM_SLEEP_MS, Number(info) < 0 ? MAX_CLAIM_SLEEP_MS : Math.max(10, Number(info)));
      // Never rely on BLPOP alone: during a failover it can sit in a reconnect queue for long.
      const wait = this.#wakeups.park("claim", signal, sleepMs + 1000);
      try {
        // One BLPOP at a time on the blocking connection: an abandoned one (the watcher was woken
        // otherwise, or stopped) is left to end and is reused by the next watcher, so none pile up.
        this.#blpop ??= this.#blocking
          .blpop(k.signal, sleepMs / 1000)
          .catch(() => null)
          .finally(() => {
            this.#blpop = undefined;
            // Left by its watcher (woken otherwise, or stopped): a parked claimer looks instead.
            if (!this.#watching) this.#wakeups.wake("claim", 1);
          });
        await Promise.race([this.#blpop, wait.woken]);
      } finally {
        wait.done();
        this.#watching = false;
        // A watcher that stops hands the watch on: the parked claimers may belong to another caller.
        if (signal.aborted) this.#wakeups.wake("claim", 1);
      }
    }
    return undefined;
  }

  async renew(id: string, fence: number, leaseMs: number): Promise<RenewResult> {
    const [result] = await this.renewAll([{ id, fence }], leaseMs);
    return result ?? "lost";
  }

  /**
   * Checks every fence on its log's slot (the checks go out together, in one write), then renews
   * every lease still held in one script on the queue's slot: two round trips however many leases.
   */
  async renewAll(leases: readonly Lease[], leaseMs: number): Promise<RenewResult[]> {
    if (leases.length === 0) return [];
    const states = await Promise.all(
      leases.map(async ({ id, fence }) => String(await this.#commands.llLeaseCheck(this.#keys.meta(id), "check", fence))),
    );
    const held = leases.filter((_, i) => states[i] === "ok").map((lease) => lease.id);
    const k = this.#keys;
    const renewed =
      held.length === 0
        ? []
        : ((await this.#commands.llLease(k.ready, k.leased, k.order, k.signal, k.changes, "renew", leaseMs, ...held)) as number[]);
    let next = 0;
    return states.map((state): RenewResult => {
      if (state === "closed") return "closed";
      if (state !== "ok") return "lost";
      return renewed[next++] === 1 ? "renewed" : "lost";
    });
  }

  async release(id: string, fence: number): Promise<void> {
    const state = String(await this.#commands.llLeaseCheck(this.#keys.meta(id), "check", fence));
    if (state === "ok") await this.#lease("release", id);
  }

  async cancel(id: string): Promise<CancelResult> {
    const since = this.#durableCloses;
    const result = String(
      await this.#durable.llCancel(
        this.#keys.meta(id),
        this.#keys.log(id),
        new Date().toISOString(),
        this.#keys.notify(id),
        this.#retention,
      ),
    ) as CancelResult;
    if (result === "cancelled") {
      await this.#replicate(since, this.#keys.meta(id));
      await this.#lease("finish", id, "cancelled");
      await this.#chatNameEnds(id);
    }
    return result;
  }

  changes(after: string | undefined, limit: number): Promise<ChangesPage> {
    return this.#feed.changes(after, limit);
  }

  waitForChanges(after: string | undefined, signal: AbortSignal): Promise<void> {
    return this.#feed.waitForChanges(after, signal);
  }

  generations(after: string | undefined, limit: number): Promise<GenerationsPage> {
    return this.#feed.generations(after, limit);
  }

  /**
   * The chat's key has no expiry while the generation runs; once its log has ended it expires with
   * the log. The generation notes its chat first, so whichever of this and the answer's end comes
   * second sets the expiry (see {@link #chatNameEnds}).
   */
  async setChatGeneration(chatId: string, generationId: string): Promise<void> {
    const since = this.#durableCloses;
    const state = String(await this.#durable.llChatMark(this.#keys.meta(generationId), chatId));
    await this.#durable.set(this.#keys.chat(chatId), generationId);
    if (state !== "running" || (await this.#isTerminal(generationId))) await this.#expireChatName(chatId, generationId);
    await this.#replicate(since, this.#keys.meta(generationId), this.#keys.chat(chatId));
  }

  async chatGeneration(chatId: string): Promise<string | undefined> {
    return (await this.#commands.get(this.#keys.chat(chatId))) ?? undefined;
  }

  /** The log of `id` has ended: the chat that names it (if any, and still) expires with it. */
  async #chatNameEnds(id: string): Promise<void> {
    const chatId = await this.#commands.hget(this.#keys.meta(id), "chat");
    if (chatId !== null) await this.#expireChatName(chatId, id);
  }

  async #expireChatName(chatId: string, id: string): Promise<void> {
    await this.#durable.llChatExpire(this.#keys.chat(chatId), id, this.#retention);
  }

  async ping(): Promise<void> {
    await this.#commands.ping();
  }

  async close(): Promise<void> {
    if (this.#closing.signal.aborted) return;
    this.#closing.abort();
    this.#wakeups.wakeAll();
    this.#notifications.close();
    this.#feed.close();
    this.#blocking.disconnect(); // it may sit in BLPOP; nothing it holds needs a goodbye
    // QUIT on a connection that is down would sit in the offline queue through every retry
    // (tens of seconds): only a connection that is up gets a goodbye.
    await Promise.all(
      this.#clients()
        .filter((c) => c !== this.#blocking)
        .map((c) => (c.status === "ready" ? c.quit().catch(() => c.disconnect()) : Promise.resolve(c.disconnect()))),
    );
  }

  /**
   * WAIT for the configured replicas, capped by those connected (read from INFO at most once a
   * second): with no replica left there is nothing a failover could lose to. On a Cluster, of the
   * primary of each of `keys`' shards, over the connection the write to it went through (WAIT
   * counts that connection's writes); elsewhere `keys` do not matter: there is one primary.
   * `since` is {@link #durableCloses} before the first write to confirm: a connection closed since
   * then confirms nothing.
   */
  async #replicate(since: number, ...keys: string[]): Promise<boolean> {
    if (this.#waitReplicas === 0) return true;
    const durable = this.#durable as RedisClient;
    if (!(durable instanceof Cluster)) return this.#heldSince(since, await this.#replicatedBy("", durable as Redis));
    const nodes = new Map<string, Redis>();
    for (const key of keys) {
      const nodeKey = durable.slots[calculateSlot(key)]?.[0];
      if (nodeKey === undefined) continue; // no slot map yet: nothing was written through it either
      const node = durable.nodes("master").find((n) => `${n.options.host}:${n.options.port}` === nodeKey);
      // The slot's primary has left the client's pool (it died; the map still names it): what it
      // acknowledged may not have reached a replica, and nothing can say it did.
      if (!node || node.status !== "ready") return false;
      nodes.set(nodeKey, node);
    }
    const confirmed = await Promise.all([...nodes].map(([nodeKey, node]) => this.#replicatedBy(nodeKey, node)));
    return this.#heldSince(since, confirmed.every(Boolean));
  }

  /** `confirmed`, when no durable connection closed since `since`. */
  #heldSince(since: number, confirmed: boolean): boolean {
    if (!confirmed || this.#durableCloses === since) return confirmed;
    this.#logger?.warn("a connection closed between a write and its WAIT: the write counts as not confirmed");
    return false;
  }

  /**
   * Whether the replicas wanted hold the writes made so far on the connection to `node`: the WAIT
   * unanswered there when there is one, else a new one. A caller holds the reply to its write, so
   * that write came before any WAIT still unanswered on the same connection (Redis answers a
   * connection in order), and that WAIT covers it: callers that come together share one WAIT, and
   * a replica that stops confirming holds the connection for one timeout at a time, not one each.
   * A WAIT leaves the map as its reply is read, before any reply read with it reaches its caller: a
   * write answered in the same read may have come after it, and waits anew.
   */
  #replicatedBy(nodeKey: string, node: Redis): Promise<boolean> {
    const shared = this.#waits.get(nodeKey);
    if (shared) return shared;
    const answered = (): void => {
      if (this.#waits.get(nodeKey) === wait) this.#waits.delete(nodeKey);
    };
    const wait: Promise<boolean> = this.#waitOn(nodeKey, node, answered).finally(answered);
    this.#waits.set(nodeKey, wait);
    return wait;
  }

  /**
   * WAIT on `node` for the replicas wanted, capped by its replicas online; false when they did not
   * confirm in time or the node could not be asked (a primary dying or just demoted), never a throw.
   */
  async #waitOn(nodeKey: string, node: Redis, answered: () => void): Promise<boolean> {
    const now = Date.now();
    let replicas = this.#replicas.get(nodeKey);
    try {
      if (!replicas || now - replicas.checkedAt > 1000) {
        replicas = { count: onlineReplicas(await node.info("replication")), checkedAt: now };
        this.#replicas.set(nodeKey, replicas);
      }
      const wanted = Math.min(this.#waitReplicas, replicas.count);
      if (wanted === 0) return true;
      const reply = node.wait(wanted, this.#waitTimeoutMs);
      // The first reaction to the reply: it runs before those of replies read after it.
      reply.then(answered, answered);
      const acked = Number(await reply);
      if (acked >= wanted) return true;
      this.#logger?.warn({ acked, wanted, ...(nodeKey === "" ? {} : { node: nodeKey }) }, "replicas did not confirm a write in time");
    } catch (error) {
      this.#logger?.warn(
        { err: (error as Error).message, ...(nodeKey === "" ? {} : { node: nodeKey }) },
        "could not ask replicas to confirm a write",
      );
    }
    if (replicas) replicas.checkedAt = 0;
    return false;
  }

  /** Every connection of the engine, each once. */
  #clients(): RedisClient[] {
    return [...new Set<RedisClient>([this.#commands, this.#durable, this.#blocking, this.#subscriber])];
  }

  async #enqueue(id: string): Promise<void> {
    const k = this.#keys;
    await this.#durable.llEnqueue(k.ready, k.leased, k.order, k.sequence, k.signal, k.changes, k.generations, id, this.#retention * 1000);
    this.#wakeups.wake("claim", 1);
  }

  async #isTerminal(id: string): Promise<boolean> {
    return (await this.#commands.hget(this.#keys.meta(id), "terminal")) === "1";
  }

  /** The type of the terminal entry that ends the log of `id`, or `""` when it has none (or no log). */
  async #endOf(id: string): Promise<EntryType | ""> {
    const [last] = await this.#commands.xrevrange(this.#keys.log(id), "+", "-", "COUNT", 1);
    const body = last?.[1][last[1].indexOf("b") + 1];
    const type = body === undefined ? undefined : (JSON.parse(body) as EntryBody).type;
    return type !== undefined && isTerminal({ type }) ? type : "";
  }

  /** Releases or finishes a job; finishing with the terminal entry's `type` notes the end in the change feed. */
  #lease(action: "release" | "finish", id: string, type: EntryType | "" = ""): Promise<number> {
    const k = this.#keys;
    const done = this.#commands.llLease(
      k.ready,
      k.leased,
      k.order,
      k.signal,
      k.changes,
      action,
      0,
      id,
      type,
      this.#retention * 1000,
    ) as Promise<number>;
    if (action === "release") void done.then(() => this.#wakeups.wake("claim", 1));
    return done;
  }
}

/** `promise`'s value, or `undefined` as soon as one of `signals` aborts (the promise is left to settle unheard). */
function untilAborted<T>(promise: Promise<T>, ...signals: AbortSignal[]): Promise<T | undefined> {
  if (signals.some((signal) => signal.aborted)) return Promise.resolve(undefined);
  return new Promise<T | undefined>((resolve, reject) => {
    const onAbort = (): void => {
      stop();
      resolve(undefined);
    };
    const stop = (): void => {
      for (const signal of signals) signal.removeEventListener("abort", onAbort);
    };
    for (const signal of signals) signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        stop();
        resolve(value);
      },
      (error: unknown) => {
        stop();
        reject(error);
      },
    );
  });
}

/**
 * The replicas `INFO replication` shows online (`slaveN:…,state=online,…`): one still loading a
 * full copy, or whose link has broken without the primary knowing yet, cannot confirm a write, and
 * `connected_slaves` counts it.
 */
export function onlineReplicas(info: string): number {
  return info.split("\n").filter((line) => /^slave\d+:.*\bstate=online\b/.test(line)).length;
}
