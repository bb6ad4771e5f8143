/**
 * Waiting without polling: callers park on a key and are woken when the adapter signals it.
 * One instance per engine; `wakeAll` ends every wait (on close).
 */
export class Wakeups {
  readonly #waiters = new Map<string, Set<() => void>>();

  /** Resolves at the next `wake(key)`, or when `signal` aborts, or after `timeoutMs`. */
  next(key: string, signal: AbortSignal, timeoutMs?: number): Promise<void> {
    if (signal.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      let set = this.#waiters.get(key);
      if (!set) {
        set = new Set();
        this.#waiters.set(key, set);
      }
      const waiters = set;
      let timer: NodeJS.Timeout | undefined;
      const done = (): void => {
        waiters.delete(done);
        if (waiters.size === 0 && this.#waiters.get(key) === waiters) this.#waiters.delete(key);
        signal.removeEventListener("abort", done);
        if (timer) clearTimeout(timer);
        resolve();
      };
      waiters.add(done);
      signal.addEventListener("abort", done, { once: true });
      if (timeoutMs !== undefined) timer = setTimeout(done, Math.max(0, timeoutMs));
    });
  }

  wake(key: string): void {
    const set = this.#waiters.get(key);
    if (!set) return;
    for (const done of [...set]) done();
  }

  /** The keys someone is waiting on now. */
  keys(): string[] {
    return [...this.#waiters.keys()];
  }

  wakeAll(): void {
    for (const key of [...this.#waiters.keys()]) this.wake(key);
  }
}
