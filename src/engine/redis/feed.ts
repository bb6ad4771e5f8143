import type { EntryType } from "../../core/entries.ts";
import type { Logger } from "../../observability/logger.ts";
import type { Change, ChangesPage, GenerationsPage } from "../port.ts";
import { Wakeups } from "../wakeups.ts";
import { connectRedis, type RedisClient, type RedisTarget } from "./connection.ts";
import type { RedisKeys } from "./keys.ts";
import type { ScriptedClient } from "./scripts.ts";

/** Longest XREAD BLOCK; a wait outlives it by blocking again. */
const BLOCK_MS = 10_000;
const FEED = "feed";

/**
 * The reading side of the Redis engine's change feed (decision 036). The records are written by
 * the queue's scripts (create, claim, finish) on the queue's slot; positions are the stream's
 * entry ids. The stream is trimmed to the engine's retention (MINID), and Redis remembers the
 * newest id it trimmed, so a reader behind it is told of the gap. Waiting is one XREAD BLOCK at a
 * time on a connection of its own, opened at the first wait, shared by every waiter of the process.
 */
export class RedisFeed {
  readonly #commands: ScriptedClient;
  readonly #keys: RedisKeys;
  readonly #target: RedisTarget;
  readonly #retentionMs: number;
  readonly #logger: Logger | undefined;
  readonly #wakeups = new Wakeups();
  #blocking: RedisClient | undefined;
  /** The XREAD BLOCK out now, if one is. */
  #read: Promise<unknown> | undefined;
  #closed = false;

  constructor(options: { commands: ScriptedClient; keys: RedisKeys; target: RedisTarget; retentionMs: number; logger?: Logger }) {
    this.#commands = options.commands;
    this.#keys = options.keys;
    this.#target = options.target;
    this.#retentionMs = options.retentionMs;
    this.#logger = options.logger;
  }

  /** Notes a retry or a rewind, which the append wrote on the log's slot (one more command, never for a delta). */
  async record(id: string, type: EntryType): Promise<void> {
    await this.#commands.llChange(this.#keys.changes, id, type, this.#retentionMs);
  }

  async changes(after: string | undefined, limit: number): Promise<ChangesPage> {
    const from = after === undefined ? "-" : `(${streamId(after)}`;
    const [rows, info] = await Promise.all([
      this.#commands.xrange(this.#keys.changes, from, "+", "COUNT", limit),
      this.#commands.call("XINFO", "STREAM", this.#keys.changes).catch((error: Error) => {
        if (/no such key/i.test(error.message)) return undefined;
        throw error;
      }),
    ]);
    const gap = info !== undefined && behindTrim(info as unknown[], after);
    const changes = rows.map(([position, fields]): Change => {
      let id = "";
      let type = "";
      for (let i = 0; i < fields.length; i += 2) {
        if (fields[i] === "i") id = fields[i + 1] ?? "";
        else if (fields[i] === "t") type = fields[i + 1] ?? "";
      }
      return { position, id, type: type as EntryType };
    });
    return { changes, gap };
  }

  async waitForChanges(after: string | undefined, signal: AbortSignal): Promise<void> {
    const since = after === undefined ? "0-0" : streamId(after);
    while (!signal.aborted && !this.#closed) {
      const [newest] = await this.#commands.xrevrange(this.#keys.changes, "+", "-", "COUNT", 1);
      if (newest && compareIds(newest[0], since) > 0) return;
      if (this.#read === undefined) this.#read = this.#block(newest?.[0] ?? since);
      await this.#wakeups.next(FEED, signal);
    }
  }

  async generations(after: string | undefined, limit: number): Promise<GenerationsPage> {
    const from = after === undefined ? "-inf" : `(${score(after)}`;
    const rows = await this.#commands.zrangebyscore(this.#keys.generations, from, "+inf", "WITHSCORES", "LIMIT", 0, limit);
    const ids: string[] = [];
    for (let i = 0; i < rows.length; i += 2) ids.push(rows[i]!);
    const last = rows.at(-1);
    return { ids, ...(last !== undefined && ids.length === limit ? { next: last } : {}) };
  }

  close(): void {
    this.#closed = true;
    this.#blocking?.disconnect();
    this.#wakeups.wakeAll();
  }

  /** One XREAD BLOCK past `since`; when it returns (a record, its time out, an error) every waiter looks again. */
  #block(since: string): Promise<unknown> {
    const client = (this.#blocking ??= this.#connect());
    return client
      .xread("COUNT", 1, "BLOCK", BLOCK_MS, "STREAMS", this.#keys.changes, since)
      .catch((error: Error) => {
        if (!this.#closed) this.#logger?.warn({ err: error.message }, "waiting for the change feed failed");
        return new Promise((resolve) => setTimeout(resolve, 200).unref());
      })
      .finally(() => {
        this.#read = undefined;
        this.#wakeups.wake(FEED);
      });
  }

  #connect(): RedisClient {
    return connectRedis(this.#target, "lifeline-feed", { logger: this.#logger });
  }
}

/** A position of this feed: a stream entry id. */
function streamId(position: string): string {
  if (!/^\d{1,16}-\d{1,16}$/.test(position)) throw new Error(`not a position of the Redis change feed: ${JSON.stringify(position)}`);
  return position;
}

/** A page position of the index of generations: a score. */
function score(position: string): string {
  if (!/^\d{1,20}$/.test(position)) throw new Error(`not a position of the Redis index of generations: ${JSON.stringify(position)}`);
  return position;
}

/** Orders two stream ids (`ms-seq`). */
export function compareIds(a: string, b: string): number {
  const [am = 0n, as = 0n] = a.split("-").map(BigInt);
  const [bm = 0n, bs = 0n] = b.split("-").map(BigInt);
  if (am !== bm) return am < bm ? -1 : 1;
  return as === bs ? 0 : as < bs ? -1 : 1;
}

/** A field of a flat `[name, value, …]` reply. */
function fieldOf(reply: readonly unknown[], name: string): unknown {
  const at = reply.indexOf(name);
  return at < 0 ? undefined : reply[at + 1];
}

/**
 * Whether a reader at `after` missed trimmed records, from XINFO STREAM. Trimming removes the
 * oldest records and Redis 7.0 does not say which one it removed last, only how many were ever
 * added and how many stand; so a reader before the oldest record kept is told of a gap when any
 * record was trimmed. That is conservative by at most one case (the last record it read was the
 * last trimmed), which costs a needless refold, never a missed change.
 */
function behindTrim(info: readonly unknown[], after: string | undefined): boolean {
  const added = Number(fieldOf(info, "entries-added") ?? 0);
  const length = Number(fieldOf(info, "length") ?? 0);
  if (added <= length) return false;
  if (after === undefined) return true;
  const first = fieldOf(info, "first-entry") as [string, unknown] | null | undefined;
  // With every record trimmed, a reader at the last one ever added has missed nothing.
  const oldest = first ? first[0] : String(fieldOf(info, "last-generated-id") ?? "0-0");
  return compareIds(after, oldest) < 0;
}
