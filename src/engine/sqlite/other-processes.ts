import type Database from "better-sqlite3";
import type { Wakeups } from "../wakeups.ts";

/** What the watcher needs of an engine's wakeups, whatever hint their wakes carry: it wakes with none. */
type Waited = Pick<Wakeups, "keys" | "wake">;

/**
 * Wakes this process's waiters for what other processes committed to the same sqlite file. Every
 * `everyMs`, while anyone waits, one `PRAGMA data_version` read (it moves only on another
 * connection's commit); when it moved, one query of the current state of the keys waited on, and a
 * wake for each key whose state differs from the last one seen. `always` keys (the job queue) are
 * woken on every move. The engine and the Durable Streams store watch their files this way.
 */
export class OtherProcesses<State> {
  readonly #db: Database.Database;
  readonly #wakeups: Waited;
  readonly #current: (keys: readonly string[]) => Iterable<readonly [string, State]>;
  readonly #always: ReadonlySet<string>;
  readonly #seen = new Map<string, State | undefined>();
  readonly #timer: NodeJS.Timeout;
  #dataVersion: number;
  #moves = 0;

  constructor(
    db: Database.Database,
    wakeups: Waited,
    current: (keys: readonly string[]) => Iterable<readonly [string, State]>,
    options: { readonly everyMs: number; readonly always?: readonly string[] },
  ) {
    this.#db = db;
    this.#wakeups = wakeups;
    this.#current = current;
    this.#always = new Set(options.always ?? []);
    this.#dataVersion = this.#readDataVersion();
    this.#timer = setInterval(() => this.#look(), options.everyMs);
    this.#timer.unref();
  }

  /**
   * How many of its looks have found that another connection changed the file (a commit, or a
   * TRUNCATE or RESTART checkpoint). While this count stays what it was when this process
   * committed to a key, no look has noted that key past that commit: another connection's commit
   * not yet seen wakes, at the next look, every waited key it changed (decision 072).
   */
  get moves(): number {
    return this.#moves;
  }

  /** What a waiter of `key` has seen, so that another process's change from it wakes the waiter. */
  saw(key: string, state: State | undefined): void {
    this.#seen.set(key, state);
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  #readDataVersion(): number {
    return this.#db.pragma("data_version", { simple: true }) as number;
  }

  #look(): void {
    if (!this.#db.open) return;
    const waited = this.#wakeups.keys();
    if (waited.length === 0) {
      this.#seen.clear();
      return;
    }
    const version = this.#readDataVersion();
    if (version === this.#dataVersion) return;
    this.#dataVersion = version;
    this.#moves += 1;
    const keys = waited.filter((key) => !this.#always.has(key));
    if (keys.length > 0) {
      const now = new Map(this.#current(keys));
      for (const key of keys) {
        if (this.#seen.get(key) !== now.get(key)) {
          this.#seen.set(key, now.get(key));
          this.#wakeups.wake(key);
        }
      }
    }
    for (const key of this.#always) this.#wakeups.wake(key);
  }
}
