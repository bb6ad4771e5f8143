/**
 * Waiting without polling: callers park on a key and are woken when the adapter signals it.
 * One instance per engine; `wakeAll` ends every wait (on close).
 *
 * A parked wait is one small object (it is its own abort listener) rather than closures: a
 * gateway holds one per generation it follows, and a closure that keeps its name (as the
 * TypeScript loader keeps them) costs more than the rest of the wait.
 */
export class Wakeups {
  /** The waiters of each key: one alone (the usual case: a gateway's tail, a claimer), a set when there are more. */
  readonly #waiters: Waiters = new Map();

  /** Resolves at the next `wake(key)`, or when `signal` aborts, or after `timeoutMs`. */
  next(key: string, signal: AbortSignal, timeoutMs?: number): Promise<void> {
    if (signal.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const waiter = new Waiter(this.#waiters, key, signal, resolve);
      const waiters = this.#waiters.get(key);
      if (waiters === undefined) this.#waiters.set(key, waiter);
      else if (waiters instanceof Waiter) this.#waiters.set(key, new Set([waiters, waiter]));
      else waiters.add(waiter);
      signal.addEventListener("abort", waiter, { once: true });
      if (timeoutMs !== undefined) waiter.timer = setTimeout(() => waiter.done(), Math.max(0, timeoutMs));
    });
  }

  wake(key: string): void {
    const waiters = this.#waiters.get(key);
    if (waiters instanceof Waiter) waiters.done();
    else if (waiters) for (const waiter of [...waiters]) waiter.done();
  }

  /** The keys someone is waiting on now. */
  keys(): string[] {
    return [...this.#waiters.keys()];
  }

  wakeAll(): void {
    for (const key of [...this.#waiters.keys()]) this.wake(key);
  }
}

type Waiters = Map<string, Waiter | Set<Waiter>>;

/** One parked wait: woken, aborted (as the signal's listener) or timed out, it leaves and resolves once. */
class Waiter {
  timer: NodeJS.Timeout | undefined;
  readonly #waiters: Waiters;
  readonly #key: string;
  readonly #signal: AbortSignal;
  readonly #resolve: () => void;

  constructor(waiters: Waiters, key: string, signal: AbortSignal, resolve: () => void) {
    this.#waiters = waiters;
    this.#key = key;
    this.#signal = signal;
    this.#resolve = resolve;
  }

  /** The signal aborted. */
  handleEvent(): void {
    this.done();
  }

  done(): void {
    const waiters = this.#waiters.get(this.#key);
    if (waiters === this) this.#waiters.delete(this.#key);
    else if (waiters instanceof Set && waiters.delete(this) && waiters.size === 0) this.#waiters.delete(this.#key);
    this.#signal.removeEventListener("abort", this);
    if (this.timer) clearTimeout(this.timer);
    this.#resolve();
  }
}
