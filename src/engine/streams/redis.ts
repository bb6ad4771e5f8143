import { probeChannels } from "../redis/probe-channels.ts";
import type { Logger } from "../../observability/logger.ts";
import { connectRedis, type RedisClient, type RedisTarget } from "../redis/connection.ts";
import { RedisKeys } from "../redis/keys.ts";
import { Notifications } from "../redis/notifications.ts";
import { withScripts, type ScriptedClient } from "../redis/scripts.ts";
import {
  revisionOf,
  type CommitResult,
  type StoredStream,
  type StreamChange,
  type StreamChunk,
  type StreamRecord,
  type StreamStore,
} from "./port.ts";
import { takeChunks } from "./take-chunks.ts";

/** How many chunks one read fetches at most; `maxBytes` usually ends the page first. */
const READ_ROWS = 1000;

export interface RedisStreamStoreOptions {
  readonly target: RedisTarget;
  /** The engine's key prefix: streams live beside its generations. @defaultValue "ll" */
  readonly prefix?: string;
  /**
   * How long after a stream's TTL or expiry time Redis drops its keys. Until then the rules hide
   * it; the margin covers clocks of gateways and Redis that disagree. @defaultValue 60000
   */
  readonly reclaimAfterMs?: number;
  readonly logger?: Logger;
}

/**
 * Streams in Redis: per stream one hash (revision, record, last touch) and one list of chunks,
 * under one hash tag, so every commit is one script on one Cluster slot (`stream-commit.lua`).
 * Waiters hear commits over sharded pub/sub, one subscription per stream and process.
 */
export class RedisStreamStore implements StreamStore {
  readonly kind = "redis";
  readonly #keys: RedisKeys;
  readonly #commands: ScriptedClient;
  readonly #subscriber: RedisClient;
  readonly #notifications: Notifications;
  readonly #reclaimAfterMs: number;

  constructor(options: RedisStreamStoreOptions) {
    this.#keys = new RedisKeys(options.prefix ?? "ll");
    this.#reclaimAfterMs = options.reclaimAfterMs ?? 60_000;
    this.#commands = withScripts(connectRedis(options.target, "lifeline-streams", { writePerTurn: true, logger: options.logger }));
    this.#subscriber = connectRedis(options.target, "lifeline-streams-sub", { logger: options.logger });
    this.#notifications = new Notifications({
      subscriber: this.#subscriber,
      publisher: this.#commands,
      channelOf: (name) => this.#keys.streamNotify(name),
      idOf: (channel) => this.#keys.streamOfChannel(channel),
      probeChannels: () => probeChannels(this.#commands, this.#keys, "ds-probe"),
      ...(options.logger ? { logger: options.logger } : {}),
    });
  }

  async load(name: string): Promise<StoredStream | undefined> {
    const [revision, record, touched] = await this.#commands.hmget(this.#keys.streamMeta(name), "rev", "record", "touched");
    if (!revision || !record) return undefined;
    return { revision, record: JSON.parse(record) as StreamRecord, touchedAt: Number(touched ?? 0) };
  }

  async commit(name: string, expected: string | undefined, change: StreamChange): Promise<CommitResult> {
    const record = change.record;
    const result = await this.#commands.dsCommit(
      this.#keys.streamMeta(name),
      this.#keys.streamChunks(name),
      expected ?? "",
      record ? revisionOf(record) : "",
      record ? JSON.stringify(record) : "",
      record ? record.createdAt : 0,
      change.replaceChunks ? "1" : "0",
      this.#keys.streamNotify(name),
      record ? this.#dropAt(record) : "",
      change.chunks[0]?.position ?? 0,
      ...change.chunks.map((chunk) => chunk.data),
    );
    return Number(result) === 1 ? "committed" : "conflict";
  }

  async read(name: string, afterPosition: number, maxBytes: number): Promise<StreamChunk[]> {
    const rows = await this.#commands.lrangeBuffer(this.#keys.streamChunks(name), afterPosition, afterPosition + READ_ROWS - 1);
    return takeChunks(
      rows.map((data, i) => ({ position: afterPosition + i + 1, data })),
      maxBytes,
    );
  }

  async touch(name: string, atMs: number): Promise<void> {
    await this.#commands.dsTouch(this.#keys.streamMeta(name), this.#keys.streamChunks(name), atMs, this.#reclaimAfterMs);
  }

  async wait(name: string, revision: string, signal: AbortSignal): Promise<void> {
    if (signal.aborted) return;
    await this.#notifications.hold(name);
    const parked = this.#notifications.park(name, signal);
    try {
      // Subscribed first, then looked: a commit in between is seen by one or the other.
      const current = await this.#commands.hget(this.#keys.streamMeta(name), "rev");
      if ((current ?? undefined) !== revision) return;
      await parked.woken;
    } finally {
      parked.done();
      this.#notifications.release(name);
    }
  }

  /**
   * When Redis may drop a stream's keys: after its expiry time, or its TTL counted from this write
   * (a write is also a touch), plus the margin; never while forks of it stand (they must see it
   * soft-deleted, `410`), never for a fork, and not when it does not expire.
   */
  #dropAt(record: StreamRecord): string {
    // A fork leaves through the rules only: they give its source's count back (decision 026).
    if (record.refCount > 0 || record.softDeleted || record.forkedFrom !== undefined) return "";
    if (record.expiresAtMs !== undefined) return String(record.expiresAtMs + this.#reclaimAfterMs);
    if (record.ttlSeconds !== undefined) return String(Date.now() + record.ttlSeconds * 1000 + this.#reclaimAfterMs);
    return "";
  }

  async close(): Promise<void> {
    this.#notifications.close();
    this.#commands.disconnect();
    this.#subscriber.disconnect();
  }
}
