import type { Entry, EntryBody, EntryType, GenerationRequest } from "../core/entries.ts";

/**
 * The one port to storage (DESIGN §3): an append-only log per generation with fenced, idempotent
 * appends, range reads and waiting, and a job queue with leases. Adapters live beside this file
 * (`memory`, `sqlite`, `redis`); every adapter passes the same conformance suite (test/engine).
 *
 * Expected outcomes (a stale fence, a re-sent entry, a wrong offset, a closed log) are values;
 * only real failures (the store does not answer) throw.
 *
 * Not in the contract: how waiting is implemented, how job order is kept beyond "oldest first",
 * and how long finished logs are kept.
 */
export interface Engine {
  /** A short name for logs and metrics: `memory`, `sqlite`, … */
  readonly kind: string;

  /**
   * True when a failover can drop entries that were already acknowledged and read (asynchronous
   * replication). Cursors then name the attempt that wrote their entry as well as its offset, and
   * readers check that the log still holds that entry before they continue after it.
   */
  readonly replicatesAsynchronously: boolean;

  /**
   * How many `claim` calls a worker gains by having in flight at once: more than one where a
   * claim waits on the network (a replica's confirmation), one where it is a local transaction.
   */
  readonly parallelClaims: number;

  /**
   * Atomically creates a log whose entry 1 is `created` and a job for it. With an idempotency key
   * seen before: the existing generation when the request is the same, a conflict when it is not.
   */
  create(request: GenerationRequest, options?: CreateOptions): Promise<CreateResult>;

  /**
   * What `create` would answer for an idempotency key seen before — the existing generation, or a
   * conflict when the request differs — without creating anything; `undefined` when the key (of
   * the tenant) is new or `options` has none. A retried start is answered by this when the key may
   * not start another answer.
   */
  findCreated(request: GenerationRequest, options: CreateOptions): Promise<Exclude<CreateResult, { kind: "created" }> | undefined>;

  /**
   * Appends `entries` at `expectedOffset` (the offset of the first of them) under the fencing
   * token `fence`, all or nothing. A terminal entry must be the last of the batch; appending it
   * also finishes the job.
   */
  append(id: string, fence: number, expectedOffset: number, entries: readonly EntryBody[]): Promise<AppendResult>;

  /** Up to `limit` entries with offsets above `afterOffset`, in offset order. */
  read(id: string, afterOffset: number, limit: number, options?: ReadOptions): Promise<Entry[]>;

  /** Where a log stands, or `undefined` when there is no such generation. */
  head(id: string): Promise<LogHead | undefined>;

  /**
   * Resolves once an entry past `afterOffset` exists (at once if one does), or when `signal`
   * aborts. Implementations never run a polling loop per waiter. It may resolve early (an engine
   * that trusts a notification from a primary that just failed over, or one that finds the log
   * shorter than `afterOffset` when it is written to): callers read, and wait again when they find
   * nothing new.
   */
  wait(id: string, afterOffset: number, signal: AbortSignal): Promise<void>;

  /**
   * Takes the oldest claimable job (queued, or leased with an expired lease) with a fencing token
   * higher than any given for it before. Blocks while there is none; `undefined` once `signal`
   * aborts. A job whose log is terminal is never handed out.
   */
  claim(worker: string, leaseMs: number, signal: AbortSignal): Promise<Claim | undefined>;

  /** Extends a lease held with `fence`: `renewAll` of one lease. */
  renew(id: string, fence: number, leaseMs: number): Promise<RenewResult>;

  /**
   * Extends every lease in `leases` (a worker's lease keeper renews all it holds at once), in one
   * round trip where the engine allows; one result per lease, in order.
   */
  renewAll(leases: readonly Lease[], leaseMs: number): Promise<RenewResult[]>;

  /** Hands a job back at once (graceful shutdown): the next claim takes it with a higher fence. */
  release(id: string, fence: number): Promise<void>;

  /**
   * Ends a generation with `cancelled` unless it already ended. The entry is appended by the
   * engine itself, whoever holds the lease; the owner learns it from `closed` on its next append or
   * renewal and stops the model call.
   */
  cancel(id: string): Promise<CancelResult>;

  /**
   * Names `generationId` as the answer a chat waits for now. A chat is a protocol door's
   * conversation (the AI SDK's chat id): its resume and stop requests name the chat, not the
   * generation, and may reach any gateway, also after a restart. The last call wins. The name is
   * kept at least as long as the generation's log (an engine with retention drops it with the log,
   * or later), never shorter. `chatId` is the door's name for the chat, a short string it has
   * validated (the AI SDK door: the chat id, under the caller's tenant when the deployment has keys).
   */
  setChatGeneration(chatId: string, generationId: string): Promise<void>;

  /** The generation last named for `chatId`, or `undefined` when none was (or it expired with its log). */
  chatGeneration(chatId: string): Promise<string | undefined>;

  /**
   * The change feed (decision 036): which logs changed, in the order the engine recorded it, after
   * the opaque position `after` (`undefined`: from the oldest record kept), at most `limit` records.
   * A record is written at least when a generation is created, when an attempt starts (a claim,
   * a takeover) and when its log ends (the terminal type), never for a `delta`, so the hot path
   * writes nothing more. Delivery is at least once: a reader keeps its own position in each log and
   * reads the log itself. `gap` is true when records after `after` were already dropped (the feed
   * is trimmed with the engine's retention): the reader has missed changes and must rebuild.
   */
  changes(after: string | undefined, limit: number): Promise<ChangesPage>;

  /**
   * Resolves once a record past `after` exists (at once if one does), or when `signal` aborts.
   * Like `wait`: no polling loop, and it may resolve early; callers read and wait again.
   */
  waitForChanges(after: string | undefined, signal: AbortSignal): Promise<void>;

  /**
   * Every generation the engine still holds, in an order that does not change while pages are
   * read (new generations may or may not appear in later pages), `limit` ids a page after the
   * opaque `after`. For rebuilding read models from the logs alone.
   */
  generations(after: string | undefined, limit: number): Promise<GenerationsPage>;

  /** Resolves when the store answers; throws when it does not. */
  ping(): Promise<void>;

  /** Releases connections and timers. Waiters and claimers still blocked are woken and give up. */
  close(): Promise<void>;
}

export interface CreateOptions {
  /** Makes retries safe: the same key (of the same tenant) names the same generation. */
  readonly idempotencyKey?: string;
  /** The tenant the generation belongs to (its `created` entry says so); none in an open deployment. */
  readonly tenant?: string;
  /** The create span's W3C `traceparent`, kept in the `created` entry (decision 040); none when tracing is off. */
  readonly traceparent?: string;
}

export type CreateResult =
  | { readonly kind: "created"; readonly id: string }
  | { readonly kind: "existing"; readonly id: string }
  | { readonly kind: "idempotencyConflict"; readonly id: string };

export type AppendResult =
  | { readonly kind: "appended"; readonly nextOffset: number }
  | { readonly kind: "duplicate"; readonly nextOffset: number }
  | { readonly kind: "staleFence"; readonly fence: number }
  | { readonly kind: "offsetConflict"; readonly lastOffset: number }
  | { readonly kind: "closed"; readonly lastOffset: number }
  | { readonly kind: "notFound" };

export interface ReadOptions {
  /**
   * The caller will wait on this log next if the page reaches its end (a follower). An engine that
   * waits by subscription subscribes before it reads, so that a wait at the end of this page needs
   * no look at the log's head (decision 045).
   */
  readonly thenWait?: boolean;
}

export interface LogHead {
  readonly lastOffset: number;
  /** True once a terminal entry stands. */
  readonly terminal: boolean;
}

export interface Claim {
  readonly id: string;
  readonly fence: number;
  /** True when the job was taken from a holder whose lease expired. */
  readonly takeover: boolean;
}

export type RenewResult = "renewed" | "lost" | "closed";

/** A lease as its holder knows it: the job and the fence it was claimed with. */
export interface Lease {
  readonly id: string;
  readonly fence: number;
}

export type CancelResult = "cancelled" | "alreadyFinished" | "notFound";

/** One record of the change feed: the log `id` got an entry of `type`. */
export interface Change {
  /** Opaque; pass it as `after` to read the records after this one. */
  readonly position: string;
  readonly id: string;
  readonly type: EntryType;
}

/** A page of the change feed. */
export interface ChangesPage {
  readonly changes: readonly Change[];
  /** True when records after the position asked for were dropped before they were read. */
  readonly gap: boolean;
}

/** A page of generation ids; `next` is absent on the last page. */
export interface GenerationsPage {
  readonly ids: readonly string[];
  readonly next?: string;
}
