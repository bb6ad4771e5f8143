import { createdEntry, idempotencyName } from "../created-entry.ts";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import Database from "better-sqlite3";
import { canonicalJson } from "../../core/canonical.ts";
import { stampEntry, type Entry, type EntryBody, type GenerationRequest } from "../../core/entries.ts";
import { assertWellFormedBatch, decideAppend, endsWithTerminal } from "../append-rules.ts";
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
  RenewResult,
} from "../port.ts";
import { Checkpointer } from "./checkpointer.ts";
import { OtherProcesses } from "./other-processes.ts";
import { positionOf, SqliteFeed } from "./feed.ts";
import { Wakeups } from "../wakeups.ts";
import { RESTART_LOG_SQL, SCHEMA, SCHEMA_VERSION } from "./schema.ts";
import { RecentEntries, type CommittedEntry } from "./recent-entries.ts";

export interface SqliteEngineOptions {
  /** Folder of the data file `lifeline.db`; created when missing (unless `readOnly`). */
  readonly dataDir: string;
  /**
   * Open an existing data file only to read it (`lifeline replay`): nothing is created or written,
   * and a missing file is an error. Writes fail. @defaultValue false
   */
  readonly readOnly?: boolean;
  /**
   * How often the process looks for commits made by other processes on the same file, while
   * someone waits. One check per process, whatever the number of waiters. @defaultValue 25
   */
  readonly watchMs?: number;
  /** `normal` survives a killed process; `full` also survives power loss. @defaultValue "normal" */
  readonly synchronous?: "normal" | "full";
}

interface GenerationRow {
  id: string;
  last_offset: number;
  terminal: number;
  fence: number;
  job: "queued" | "leased" | "done";
  lease_until: number;
}

/** The entries the change feed notes besides a creation and a claim (which have no entry of their own here). */
const FEED_TYPES: ReadonlySet<string> = new Set(["retrying", "rewind", "completed", "failed", "cancelled"]);

interface EntryRow {
  offset: number;
  at: string;
  body: string;
}

const JOBS = "jobs";
/** The waiters of the change feed; its state, for other processes' commits, is the newest record. */
const FEED = "changes";
/** Appends committed in one transaction, at most: more wait for the next turn of the event loop. */
const APPENDS_PER_GROUP = 128;

interface PendingAppend {
  readonly id: string;
  readonly fence: number;
  readonly expectedOffset: number;
  readonly entries: readonly EntryBody[];
  readonly resolve: (result: AppendResult) => void;
  readonly reject: (error: unknown) => void;
  /** What its transaction wrote, kept for readers once the transaction has committed. */
  committed?: readonly CommittedEntry[];
}

/**
 * The embedded default: one sqlite file in WAL mode, durable on one machine, shared safely by
 * several processes. Every decision (claim, renew, a group of appends) is one immediate transaction.
 */
export class SqliteEngine implements Engine {
  readonly kind = "sqlite";
  readonly replicatesAsynchronously = false;
  /** A claim is a local transaction; more in flight would only contend for the write lock. */
  readonly parallelClaims = 1;
  readonly #db: Database.Database;
  /** Copies the write-ahead log into the file off the event loop (decision 047); none for a read-only view. */
  readonly #checkpointer: Checkpointer | undefined;
  /** A log's waiters are woken by this process's commits with the log's new last offset (decision 049). */
  readonly #wakeups = new Wakeups<number>();
  readonly #otherProcesses: OtherProcesses<number>;
  #closed = false;
  /** Set by the first `close()`: every later call waits for the same close. */
  #closing: Promise<void> | undefined;
  /** The last entries this process committed to each log, for the reads that follow (decision 066). */
  readonly #recent = new RecentEntries();
  /** Appends waiting for this turn's group commit. */
  readonly #pendingAppends: PendingAppend[] = [];
  /** Set by close: the appends left are committed at once, whatever the checkpointer holds. */
  #draining = false;
  readonly #stmt;
  /** Prepared on first use, as the chats: a data file opened read-only may predate the table. */
  #changeFeed: SqliteFeed | undefined;
  #chats: { set: Database.Statement<[string, string]>; get: Database.Statement<[string], { generation_id: string }> } | undefined;

  constructor(options: SqliteEngineOptions) {
    const readOnly = options.readOnly ?? false;
    if (!readOnly) mkdirSync(options.dataDir, { recursive: true });
    const file = join(options.dataDir, "lifeline.db");
    const db = new Database(file, { readonly: readOnly, fileMustExist: readOnly });
    if (!readOnly) db.pragma("journal_mode = WAL");
    db.pragma(`synchronous = ${options.synchronous === "full" ? "FULL" : "NORMAL"}`);
    db.pragma("busy_timeout = 5000");
    const version = db.pragma("user_version", { simple: true }) as number;
    if (version > SCHEMA_VERSION || (readOnly && version !== SCHEMA_VERSION)) {
      db.close();
      throw new Error(`data file has schema ${version}; this Lifeline knows ${SCHEMA_VERSION}`);
    }
    if (!readOnly) {
      db.exec(SCHEMA);
      db.pragma(`user_version = ${SCHEMA_VERSION}`);
    }
    this.#db = db;
    // The thread starts the log over itself, with this connection's appends held for the moment,
    // so the sync of the log's new header is never made on the event loop (decision 077).
    this.#checkpointer = readOnly ? undefined : new Checkpointer(db, file, { restart: { sql: RESTART_LOG_SQL } });
    this.#stmt = {
      generation: db.prepare<[string], GenerationRow>(
        "SELECT id, last_offset, terminal, fence, job, lease_until FROM generations WHERE id = ?",
      ),
      byKey: db.prepare<[string], { id: string; request_json: string }>(
        "SELECT id, request_json FROM generations WHERE idempotency_key = ?",
      ),
      insertGeneration: db.prepare(
        "INSERT INTO generations (id, last_offset, job, idempotency_key, request_json) VALUES (?, 1, 'queued', ?, ?)",
      ),
      insertEntry: db.prepare("INSERT INTO entries (generation_id, offset, at, body) VALUES (?, ?, ?, ?)"),
      body: db.prepare<[string, number], { body: string }>("SELECT body FROM entries WHERE generation_id = ? AND offset = ?"),
      advance: db.prepare("UPDATE generations SET last_offset = ? WHERE id = ?"),
      // Only a terminal entry touches the job (and the index of open jobs).
      finish: db.prepare("UPDATE generations SET last_offset = ?, terminal = 1, job = 'done' WHERE id = ?"),
      read: db.prepare<[string, number, number], EntryRow>(
        "SELECT offset, at, body FROM entries WHERE generation_id = ? AND offset > ? ORDER BY offset LIMIT ?",
      ),
      nextJob: db.prepare<[number], { id: string; job: string }>(
        `SELECT id, job FROM generations
          WHERE job = 'queued' OR (job = 'leased' AND lease_until <= ?)
          ORDER BY seq LIMIT 1`,
      ),
      nextExpiry: db.prepare<[], { until: number | null }>("SELECT min(lease_until) AS until FROM generations WHERE job = 'leased'"),
      lease: db.prepare("UPDATE generations SET fence = fence + 1, job = 'leased', lease_until = ?, holder = ? WHERE id = ?"),
      renew: db.prepare("UPDATE generations SET lease_until = ? WHERE id = ?"),
      release: db.prepare("UPDATE generations SET job = 'queued', lease_until = 0, holder = NULL WHERE id = ?"),
      offsets: db.prepare<[string], { id: string; last_offset: number }>(
        "SELECT id, last_offset FROM generations WHERE id IN (SELECT value FROM json_each(?))",
      ),
    };
    this.#otherProcesses = new OtherProcesses(
      this.#db,
      this.#wakeups,
      (ids) => {
        const states = this.#stmt.offsets.all(JSON.stringify(ids)).map((row) => [row.id, row.last_offset] as const);
        return ids.includes(FEED) ? [...states, [FEED, this.#feed().last()] as const] : states;
      },
      { everyMs: options.watchMs ?? 25, always: [JOBS] },
    );
  }

  async findCreated(request: GenerationRequest, options: CreateOptions): Promise<Exclude<CreateResult, { kind: "created" }> | undefined> {
    return this.#found(idempotencyName(options) ?? null, canonicalJson(request));
  }

  /** What a create under `key` answers when the key was seen before; `undefined` when it is new. */
  #found(key: string | null, requestJson: string): Exclude<CreateResult, { kind: "created" }> | undefined {
    const seen = key === null ? undefined : this.#stmt.byKey.get(key);
    return seen && { kind: seen.request_json === requestJson ? "existing" : "idempotencyConflict", id: seen.id };
  }

  async create(request: GenerationRequest, options: CreateOptions = {}): Promise<CreateResult> {
    await this.#unheld();
    const requestJson = canonicalJson(request);
    const key = idempotencyName(options) ?? null;
    const result = this.#db
      .transaction((): CreateResult => {
        const found = this.#found(key, requestJson);
        if (found) return found;
        const id = newGenerationId();
        const body = createdEntry(request, options);
        this.#stmt.insertGeneration.run(id, key, requestJson);
        this.#stmt.insertEntry.run(id, 1, new Date().toISOString(), canonicalJson(body));
        this.#feed().record(id, "created");
        return { kind: "created", id };
      })
      .immediate();
    if (result.kind === "created") {
      this.#wakeups.wake(JOBS);
      this.#wakeups.wake(FEED);
    }
    return result;
  }

  /**
   * Appends are committed in groups: the appends asked for in one turn of the event loop go into one
   * transaction (128 at most; the rest in the next turns), in the order asked, each decided on the
   * state the ones before it left. A commit is the dear part of an append (a WAL write), so many
   * answers streaming at once share it.
   */
  append(id: string, fence: number, expectedOffset: number, entries: readonly EntryBody[]): Promise<AppendResult> {
    if (this.#closed) return Promise.reject(new Error("the sqlite engine is closed"));
    try {
      assertWellFormedBatch(entries); // a caller's mistake fails here, not inside the group's transaction
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise((resolve, reject) => {
      this.#pendingAppends.push({ id, fence, expectedOffset, entries, resolve, reject });
      if (this.#pendingAppends.length === 1) setImmediate(() => this.#commitAppends());
    });
  }

  /**
   * Whether this connection's writes wait: the checkpointer's thread is starting the log over, so
   * that the new header's sync is its own, not the event loop's (decision 077). Never while closing.
   */
  #held(): boolean {
    return !this.#draining && this.#checkpointer?.holdsWrites() === true;
  }

  /** Resolves once {@link #held} is over: at once nearly always, otherwise within a few milliseconds. */
  async #unheld(): Promise<void> {
    while (this.#held()) await sleep(1);
  }

  /** Commits the appends asked so far, a group of at most {@link APPENDS_PER_GROUP} now and the rest on later turns. */
  #commitAppends(): void {
    if (this.#pendingAppends.length > 0 && this.#held()) {
      // The checkpointer's thread is starting the log over (decision 077): a few milliseconds.
      setTimeout(() => this.#commitAppends(), 1);
      return;
    }
    const batch = this.#pendingAppends.splice(0, APPENDS_PER_GROUP);
    if (batch.length === 0) return;
    // The loop turns between groups: each group's commit wakes its readers, who read at once, and a
    // thousand answers' windows closing in one turn were one step of 100-200 ms (decision 018).
    if (this.#pendingAppends.length > 0 && !this.#closed) setImmediate(() => this.#commitAppends());
    if (this.#closed) {
      for (const append of batch) append.reject(new Error("the sqlite engine is closed"));
      return;
    }
    let results: AppendResult[];
    try {
      results = this.#db.transaction(() => batch.map((append) => this.#appendOne(append))).immediate();
    } catch (error) {
      // The store itself failed (busy past its timeout, disk full): every append of the group fails
      // with it, rather than each being tried again while the event loop waits.
      if (isStoreFailure(error)) {
        for (const append of batch) append.reject(error);
        return;
      }
      // Something else threw (a bug in one append): each alone, so only its own fails.
      for (const append of batch) {
        try {
          this.#settle(append, this.#db.transaction(() => this.#appendOne(append)).immediate());
        } catch (error) {
          append.reject(error);
        }
      }
      return;
    }
    for (const [i, append] of batch.entries()) this.#settle(append, results[i]!);
  }

  #settle(append: PendingAppend, result: AppendResult): void {
    if (result.kind === "appended") {
      if (append.committed) this.#recent.add(append.id, append.committed, this.#otherProcesses.moves);
      this.#wakeups.wake(append.id, Infinity, result.nextOffset - 1);
      if (append.entries.some((body) => FEED_TYPES.has(body.type))) this.#wakeups.wake(FEED);
    }
    append.resolve(result);
  }

  /** One append, inside the group's transaction. */
  #appendOne(append: PendingAppend): AppendResult {
    const { id, fence, expectedOffset, entries } = append;
    const row = this.#stmt.generation.get(id);
    if (!row) return { kind: "notFound" };
    const state = { lastOffset: row.last_offset, terminal: row.terminal === 1, fence: row.fence };
    const decision = decideAppend(state, fence, expectedOffset, entries, (offset) => this.#stmt.body.get(id, offset)?.body);
    if (decision.kind === "appended") append.committed = this.#insert(row, entries);
    return decision;
  }

  /** Inserts entries after the log's last one; inside a transaction. Returns them as written. */
  #insert(row: GenerationRow, entries: readonly EntryBody[]): CommittedEntry[] {
    const at = new Date().toISOString();
    let offset = row.last_offset;
    const written: CommittedEntry[] = [];
    for (const body of entries) {
      const json = canonicalJson(body);
      this.#stmt.insertEntry.run(row.id, ++offset, at, json);
      written.push({ offset, at, json });
    }
    (endsWithTerminal(entries) ? this.#stmt.finish : this.#stmt.advance).run(offset, row.id);
    // A delta writes nothing more; the rare entries that matter across answers are noted.
    for (const body of entries) if (FEED_TYPES.has(body.type)) this.#feed().record(row.id, body.type);
    return written;
  }

  async read(id: string, afterOffset: number, limit: number): Promise<Entry[]> {
    const recent = this.#recent.read(id, afterOffset, limit);
    if (recent !== undefined) return recent;
    return this.#stmt.read.all(id, afterOffset, limit).map((row) => stampEntry(JSON.parse(row.body) as EntryBody, row.offset, row.at));
  }

  async head(id: string): Promise<LogHead | undefined> {
    const row = this.#stmt.generation.get(id);
    return row && { lastOffset: row.last_offset, terminal: row.terminal === 1 };
  }

  async wait(id: string, afterOffset: number, signal: AbortSignal): Promise<void> {
    // Where this process's own commits left the log, unless the look at the file has seen another
    // connection change it since: then that is where it ends, and the first look needs no query
    // (decision 072).
    let known = this.#recent.endStamped(id, this.#otherProcesses.moves);
    while (!this.#closed && !signal.aborted) {
      if (known === undefined) {
        const row = this.#stmt.generation.get(id);
        if (row && row.last_offset > afterOffset) return;
      } else if (known > afterOffset) return;
      known = undefined;
      // A commit of this process tells where the log now ends; a wake from the cross-process
      // watcher, a cancel or a timeout tells nothing, and is looked at again.
      const lastOffset = await this.#wakeups.next(id, signal);
      if (lastOffset !== undefined && lastOffset > afterOffset) return;
    }
  }

  async claim(worker: string, leaseMs: number, signal: AbortSignal): Promise<Claim | undefined> {
    while (!signal.aborted && !this.#closed) {
      await this.#unheld();
      const now = Date.now();
      const claim = this.#db
        .transaction((): Claim | undefined => {
          const job = this.#stmt.nextJob.get(now);
          if (!job) return undefined;
          this.#stmt.lease.run(now + leaseMs, worker, job.id);
          this.#feed().record(job.id, "started");
          const row = this.#stmt.generation.get(job.id);
          return row && { id: job.id, fence: row.fence, takeover: job.job === "leased" };
        })
        .immediate();
      if (claim) {
        this.#wakeups.wake(FEED);
        return claim;
      }
      const until = this.#stmt.nextExpiry.get()?.until;
      await this.#wakeups.next(JOBS, signal, until == null ? undefined : until - now);
    }
    return undefined;
  }

  async renew(id: string, fence: number, leaseMs: number): Promise<RenewResult> {
    const [result] = await this.renewAll([{ id, fence }], leaseMs);
    return result ?? "lost";
  }

  async renewAll(leases: readonly Lease[], leaseMs: number): Promise<RenewResult[]> {
    await this.#unheld();
    return this.#db
      .transaction((): RenewResult[] => {
        const until = Date.now() + leaseMs;
        return leases.map(({ id, fence }): RenewResult => {
          const row = this.#stmt.generation.get(id);
          if (!row || row.terminal === 1) return "closed";
          if (row.fence !== fence || row.job !== "leased") return "lost";
          this.#stmt.renew.run(until, id);
          return "renewed";
        });
      })
      .immediate();
  }

  async release(id: string, fence: number): Promise<void> {
    await this.#unheld();
    const released = this.#db
      .transaction((): boolean => {
        const row = this.#stmt.generation.get(id);
        if (!row || row.fence !== fence || row.job !== "leased") return false;
        this.#stmt.release.run(id);
        return true;
      })
      .immediate();
    if (released) this.#wakeups.wake(JOBS);
  }

  async cancel(id: string): Promise<CancelResult> {
    await this.#unheld();
    let cancelled: CommittedEntry[] = [];
    const result = this.#db
      .transaction((): CancelResult => {
        const row = this.#stmt.generation.get(id);
        if (!row) return "notFound";
        if (row.terminal === 1) return "alreadyFinished";
        cancelled = this.#insert(row, [{ type: "cancelled", attempt: row.fence }]);
        return "cancelled";
      })
      .immediate();
    if (result === "cancelled") {
      // Kept like an append's entries: a wait at the end of the log finds where it ends now.
      this.#recent.add(id, cancelled, this.#otherProcesses.moves);
      this.#wakeups.wake(id);
      this.#wakeups.wake(FEED);
    }
    return result;
  }

  async changes(after: string | undefined, limit: number): Promise<ChangesPage> {
    return this.#feed().page(after, limit);
  }

  async waitForChanges(after: string | undefined, signal: AbortSignal): Promise<void> {
    const afterSeq = positionOf(after);
    // A wake may be early (another process committed something else); look again before returning.
    while (!this.#closed && !signal.aborted) {
      const last = this.#feed().last();
      if (last > afterSeq) return;
      this.#otherProcesses.saw(FEED, last);
      await this.#wakeups.next(FEED, signal);
    }
  }

  async generations(after: string | undefined, limit: number): Promise<GenerationsPage> {
    return this.#feed().generations(after, limit);
  }

  #feed(): SqliteFeed {
    return (this.#changeFeed ??= new SqliteFeed(this.#db));
  }

  /** Logs are kept for good here, and so are the chats that name them. */
  async setChatGeneration(chatId: string, generationId: string): Promise<void> {
    await this.#unheld();
    this.#chatStatements().set.run(chatId, generationId);
  }

  async chatGeneration(chatId: string): Promise<string | undefined> {
    return this.#chatStatements().get.get(chatId)?.generation_id;
  }

  /** Prepared on first use: a data file opened read-only from before the `chats` table still opens. */
  #chatStatements() {
    return (this.#chats ??= {
      set: this.#db.prepare(
        "INSERT INTO chats (chat_id, generation_id) VALUES (?, ?) ON CONFLICT (chat_id) DO UPDATE SET generation_id = excluded.generation_id",
      ),
      get: this.#db.prepare<[string], { generation_id: string }>("SELECT generation_id FROM chats WHERE chat_id = ?"),
    });
  }

  async ping(): Promise<void> {
    this.#db.prepare("SELECT 1").get();
  }

  close(): Promise<void> {
    return (this.#closing ??= this.#close());
  }

  async #close(): Promise<void> {
    this.#draining = true; // what was asked before close is committed now, held or not
    while (this.#pendingAppends.length > 0) this.#commitAppends(); // what was asked before close is committed
    this.#closed = true;
    this.#otherProcesses.stop();
    this.#wakeups.wakeAll();
    await this.#checkpointer?.stop();
    this.#db.close();
  }
}

/** An error of sqlite itself (SQLITE_BUSY, SQLITE_FULL, SQLITE_IOERR, …), not of the code around it. */
function isStoreFailure(error: unknown): boolean {
  return (
    typeof error === "object" &&
    error !== null &&
    typeof (error as { code?: unknown }).code === "string" &&
    (error as { code: string }).code.startsWith("SQLITE_")
  );
}
