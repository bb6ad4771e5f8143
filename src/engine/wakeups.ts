/**
 * Waiting without polling: callers park on a key and are woken when the adapter signals it.
 * One instance per engine; `wakeAll` ends every wait (on close).
 *
 * A parked wait is one small object (it is its own abort listener) rather than closures: a
 * gateway holds one per generation it follows, and a closure that keeps its name (as the
 * TypeScript loader keeps them) costs more than the rest of the wait.
 */
export class Wakeups<Hint = never> {
  /** The waiters of each key: one alone (the usual case: a gateway's tail, a claimer), a set when there are more. */
  readonly #waiters: Waiters<Hint> = new Map();

  /**
   * Resolves at the next `wake(key)`, or when `signal` aborts, or after `timeoutMs`; with the
   * wake's hint, if it gave one (what the waker knows of the new state: a waiter that trusts it
   * need not look again).
   */
  next(key: string, signal: AbortSignal, timeoutMs?: number): Promise<Hint | undefined> {
    return this.park(key, signal, timeoutMs).woken;
  }

  /**
   * Like {@link next}, with the wait itself: a caller that stops waiting for another reason calls
   * its `done()`, which leaves at once (no abort controller of its own is needed for that).
   */
  park(key: string, signal: AbortSignal, timeoutMs?: number): ParkedWait<Hint> {
    if (signal.aborted) return DONE;
    let resolve!: (hint: Hint | undefined) => void;
    const woken = new Promise<Hint | undefined>((r) => (resolve = r));
    const waiter = new Waiter<Hint>(this.#waiters, key, signal, resolve, woken);
    const waiters = this.#waiters.get(key);
    if (waiters === undefined) this.#waiters.set(key, waiter);
    else if (waiters instanceof Waiter) this.#waiters.set(key, new Set([waiters, waiter]));
    else waiters.add(waiter);
    signal.addEventListener("abort", waiter, { once: true });
    if (timeoutMs !== undefined) waiter.timer = setTimeout(() => waiter.done(), Math.max(0, timeoutMs));
    return waiter;
  }

  /** Wakes every waiter of `key`, or the `count` that have waited longest; each gets `hint`. */
  wake(key: string, count = Infinity, hint?: Hint): void {
    if (count <= 0) return;
    const waiters = this.#waiters.get(key);
    if (waiters instanceof Waiter) waiters.done(hint);
    else if (waiters) {
      let left = count;
      for (const waiter of [...waiters]) {
        if (left-- <= 0) break;
        waiter.done(hint);
      }
    }
  }

  /** The keys someone is waiting on now. */
  keys(): string[] {
    return [...this.#waiters.keys()];
  }

  wakeAll(): void {
    for (const key of [...this.#waiters.keys()]) this.wake(key);
  }
}

/** A wait under way: `woken` resolves once it is over; `done()` ends it (again: nothing). */
export interface ParkedWait<Hint = never> {
  readonly woken: Promise<Hint | undefined>;
  done(): void;
}

const DONE: ParkedWait = { woken: Promise.resolve(undefined), done: () => undefined };

type Waiters<Hint> = Map<string, Waiter<Hint> | Set<Waiter<Hint>>>;

/** One parked wait: woken, aborted (as the signal's listener), timed out or done, it leaves and resolves once. */
class Waiter<Hint> implements ParkedWait<Hint> {
  timer: NodeJS.Timeout | undefined;
  readonly woken: Promise<Hint | undefined>;
  readonly #waiters: Waiters<Hint>;
  readonly #key: string;
  readonly #signal: AbortSignal;
  #resolve: ((hint: Hint | undefined) => void) | undefined;

  constructor(
    waiters: Waiters<Hint>,
    key: string,
    signal: AbortSignal,
    resolve: (hint: Hint | undefined) => void,
    woken: Promise<Hint | undefined>,
  ) {
    this.#waiters = waiters;
    this.#key = key;
    this.#signal = signal;
    this.#resolve = resolve;
    this.woken = woken;
  }

  /** The signal aborted. */
  handleEvent(): void {
    this.done();
  }

  done(hint?: Hint): void {
    const resolve = this.#resolve;
    if (resolve === undefined) return;
    this.#resolve = undefined;
    const waiters = this.#waiters.get(this.#key);
    if (waiters === this) this.#waiters.delete(this.#key);
    else if (waiters instanceof Set && waiters.delete(this) && waiters.size === 0) this.#waiters.delete(this.#key);
    this.#signal.removeEventListener("abort", this);
    if (this.timer) clearTimeout(this.timer);
    resolve(hint);
  }
}
