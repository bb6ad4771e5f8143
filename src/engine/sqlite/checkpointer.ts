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
 */
const THREAD = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.driver);
const db = new Database(workerData.file, { fileMustExist: true });
db.pragma("busy_timeout = 0");
let timer;
let lastLog = 0;
let quiet = 0;
const pass = () => {
  let log = lastLog;
  try {
    [{ log }] = db.pragma("wal_checkpoint(PASSIVE)");
  } catch (error) {
    if (!error || (error.code !== "SQLITE_BUSY" && error.code !== "SQLITE_LOCKED")) {
      db.close();
      throw error; // the thread ends, and the event loop's connection checkpoints again
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
  #stopping = false;

  constructor(
    db: Database.Database,
    file: string,
    { everyMs = CHECKPOINT_EVERY_MS, backstopPages = BACKSTOP_AUTOCHECKPOINT_PAGES }: { everyMs?: number; backstopPages?: number } = {},
  ) {
    this.#db = db;
    db.pragma(`journal_size_limit = ${JOURNAL_SIZE_LIMIT_BYTES}`);
    let thread: Worker | undefined;
    try {
      const driver = createRequire(import.meta.url).resolve("better-sqlite3");
      const busyEveryMs = Math.min(everyMs, BUSY_CHECKPOINT_EVERY_MS);
      thread = new Worker(THREAD, { eval: true, execArgv: [], workerData: { driver, file, everyMs, busyEveryMs } });
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
        if (!this.#stopping) this.#fallBack();
        resolve();
      });
    });
    thread.on("error", () => undefined); // it exits next
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
