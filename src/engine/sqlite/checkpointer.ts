import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import type Database from "better-sqlite3";

/** How often the checkpointer copies the write-ahead log into the database file while it is quiet. */
const CHECKPOINT_EVERY_MS = 1000;
/** How often while the log grows: a backstop then finds at most this long's commits left to copy. */
const BUSY_CHECKPOINT_EVERY_MS = 50;
/** sqlite's own default: the pages after which a commit checkpoints, when no checkpointer runs. */
const DEFAULT_AUTOCHECKPOINT_PAGES = 1000;
/**
 * While the thread runs, a commit still checkpoints past this many pages (64 MB). A passive
 * checkpoint copies only the frames there were when it began; under steady commits it rarely ends
 * with all of them copied, and the log is reused from its start only then. This backstop, run in
 * the committing connection, catches up with what the thread left (little: the thread passes every
 * 50 ms while the log grows) and lets the log restart. Each backstop stops the event loop for its
 * copy and its file syncs, so it comes once per 64 MB, not per 16 MB (decision 065).
 */
const BACKSTOP_AUTOCHECKPOINT_PAGES = 16_000;
/** The write-ahead log file is cut back to this once it restarts (it keeps its largest size otherwise). */
const JOURNAL_SIZE_LIMIT_BYTES = 64 << 20;

/**
 * The checkpointer's thread: a connection of its own to the same file, copying the log into the
 * database with a PASSIVE checkpoint (it never waits for the writer or readers, and they never wait
 * for it): every `busyEveryMs` while the log grows, less and less often up to `everyMs` while it
 * does not. Plain JavaScript, evaluated: it needs no loader, whatever runs the product.
 *
 * With a `restartSql` it also starts the log over itself (decision 077). When a pass leaves every
 * frame copied, or the log has grown past `catchUpPages`, it raises a flag the event loop reads
 * before each write (shared memory: no message to wait for), copies what is left, and with
 * the log whole commits `restartSql` first: that commit starts the log over and syncs the new
 * header here, not on the event loop. Then it lowers the flag. Its own frame is left uncopied until
 * another connection commits, so that commit finds the log in use and appends to it.
 */
const THREAD = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.driver);
const db = new Database(workerData.file, { fileMustExist: true });
db.pragma("busy_timeout = 0");
// Its own commit (the restart's) neither syncs unless it starts the log over, nor checkpoints by
// itself: left uncopied, a frame that did not start the log over keeps the next commit from doing it.
db.pragma("synchronous = NORMAL");
db.pragma("wal_autocheckpoint = 0");
const restart = workerData.restartSql ? db.prepare(workerData.restartSql) : undefined;
const hold = new Int32Array(workerData.hold);
let timer;
let lastLog = 0;
let quiet = 0;
let ownVersion = -1; // data_version after this thread's own restart: while it is the same, no one else committed
const busy = (error) => error && (error.code === "SQLITE_BUSY" || error.code === "SQLITE_LOCKED");
const checkpoint = () => {
  try {
    return db.pragma("wal_checkpoint(PASSIVE)")[0];
  } catch (error) {
    if (busy(error)) return undefined;
    db.close();
    throw error; // the thread ends, and the event loop's connection checkpoints again
  }
};
const pause = new Int32Array(new SharedArrayBuffer(4));
// Under the flag: copy what is left (a write that began before the flag went up ends in a moment),
// then, with the log whole, commit first.
const restartHeld = () => {
  for (let tries = 0; tries < 5; tries++) {
    const done = checkpoint();
    if (done && done.checkpointed === done.log) return restartWhole();
    Atomics.wait(pause, 0, 0, 1);
  }
  // Still not whole: another process's commits. The backstop is there for that.
};
const restartWhole = () => {
  try {
    db.pragma("busy_timeout = 20"); // a write of another connection, or process, ends in a moment
    restart.run();
    ownVersion = db.pragma("data_version", { simple: true });
  } catch (error) {
    if (!busy(error)) {
      db.close();
      throw error;
    }
  } finally {
    if (db.open) db.pragma("busy_timeout = 0");
  }
};
const pass = () => {
  let log = lastLog;
  if (!restart || db.pragma("data_version", { simple: true }) !== ownVersion) {
    const done = checkpoint();
    if (done) {
      log = done.log;
      if (restart && log > 0 && (done.checkpointed === log || log >= workerData.catchUpPages)) {
        Atomics.store(hold, 0, 1);
        try {
          restartHeld();
        } finally {
          Atomics.store(hold, 0, 0);
        }
      }
    }
  }
  // While the log moves, the next pass comes soon, so what a backstop has left to copy stays small;
  // a quiet log is looked at less and less often (a pause of the writer is not the end of its work).
  quiet = log === lastLog ? quiet + 1 : 0;
  lastLog = log;
  timer = setTimeout(pass, Math.min(workerData.everyMs, workerData.busyEveryMs * 2 ** quiet));
};
timer = setTimeout(pass, workerData.busyEveryMs);
parentPort.on("message", () => { clearTimeout(timer); db.close(); parentPort.close(); });
`;

/** How the thread starts the log over itself (decision 077). */
export interface LogRestart {
  /** A statement that writes one small row (it must change a page: `UPDATE … SET n = n + 1`). */
  readonly sql: string;
  /** The log's size in pages past which the thread holds the writes to catch up (default: 8,000, 32 MB). */
  readonly catchUpPages?: number;
}

/** The longest the writes are held, should the thread stop with its flag raised. */
const MAX_HOLD_MS = 1000;
const CATCH_UP_PAGES = 8000;

/**
 * Checkpoints a WAL-mode database off the event loop (decision 047). sqlite checkpoints in the
 * connection whose commit crosses `wal_autocheckpoint` pages: there, that is the event loop, which
 * stopped for the copy and the file sync — 13–15 ms on a quiet disk, over 50 ms under load, every
 * few megabytes appended. Here a thread of its own does it, and the event loop's connection
 * checkpoints only as a backstop, past 64 MB (decision 065). Should the thread fail, the connection
 * checkpoints as sqlite does by default again.
 */
export class Checkpointer {
  readonly #db: Database.Database;
  readonly #thread: Worker | undefined;
  readonly #exited: Promise<void>;
  /** The thread's flag: 1 while it starts the log over and the appends should wait. */
  readonly #hold = new Int32Array(new SharedArrayBuffer(4));
  /** When the event loop first found the flag raised ({@link holdsWrites}). */
  #heldSince: number | undefined;
  #stopping = false;

  constructor(
    db: Database.Database,
    file: string,
    {
      everyMs = CHECKPOINT_EVERY_MS,
      backstopPages = BACKSTOP_AUTOCHECKPOINT_PAGES,
      restart,
    }: { everyMs?: number; backstopPages?: number; restart?: LogRestart } = {},
  ) {
    this.#db = db;
    db.pragma(`journal_size_limit = ${JOURNAL_SIZE_LIMIT_BYTES}`);
    let thread: Worker | undefined;
    try {
      const driver = createRequire(import.meta.url).resolve("better-sqlite3");
      const busyEveryMs = Math.min(everyMs, BUSY_CHECKPOINT_EVERY_MS);
      const workerData = {
        driver,
        file,
        everyMs,
        busyEveryMs,
        restartSql: restart?.sql,
        catchUpPages: restart?.catchUpPages ?? CATCH_UP_PAGES,
        hold: this.#hold.buffer,
      };
      thread = new Worker(THREAD, { eval: true, execArgv: [], workerData });
    } catch {
      // No thread to be had (a permission model without workers, say): sqlite's default stands.
    }
    this.#thread = thread;
    if (!thread) {
      this.#exited = Promise.resolve();
      return;
    }
    db.pragma(`wal_autocheckpoint = ${backstopPages}`);
    thread.unref();
    this.#exited = new Promise<void>((resolve) => {
      thread.once("exit", () => {
        Atomics.store(this.#hold, 0, 0); // a thread that ended holds nothing
        if (!this.#stopping) this.#fallBack();
        resolve();
      });
    });
    thread.on("error", () => undefined); // it exits next
  }

  /**
   * Whether the event loop's connection should hold its writes for now: the thread is starting
   * the log over. A flag left up longer than {@link MAX_HOLD_MS} (a thread stuck in a sync) holds
   * nothing.
   */
  holdsWrites(): boolean {
    if (Atomics.load(this.#hold, 0) === 0) {
      this.#heldSince = undefined;
      return false;
    }
    const now = performance.now();
    this.#heldSince ??= now;
    return now - this.#heldSince < MAX_HOLD_MS;
  }

  /** The thread is gone: commits of the event loop's connection checkpoint again. */
  #fallBack(): void {
    if (this.#db.open) this.#db.pragma(`wal_autocheckpoint = ${DEFAULT_AUTOCHECKPOINT_PAGES}`);
  }

  /** Stops the thread; the connection's own close checkpoints what is left. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#thread?.ref(); // the process waits for the thread's exit, or a top-level await of close() would never settle
    this.#thread?.postMessage("stop");
    await this.#exited;
  }
}
