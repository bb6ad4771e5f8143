/**
 * A single-consumer async queue: the producer pushes without waiting, the consumer pulls with
 * `next()`. It buffers what the consumer has not taken yet (at most one answer's events).
 */
export class EventQueue<T> implements AsyncIterator<T, undefined> {
  #buffer: T[] = [];
  #waiting: { resolve: (result: IteratorResult<T, undefined>) => void; reject: (error: unknown) => void } | undefined;
  #closed = false;
  #error: { readonly reason: unknown } | undefined;

  push(value: T): void {
    if (this.#closed) return;
    const waiting = this.#waiting;
    if (waiting) {
      this.#waiting = undefined;
      waiting.resolve({ value, done: false });
    } else {
      this.#buffer.push(value);
    }
  }

  /** No more values: the consumer gets what is buffered, then `done`. */
  end(): void {
    this.#close(undefined);
  }

  /** The consumer gets what is buffered, then `reason` as a rejection. */
  fail(reason: unknown): void {
    this.#close({ reason });
  }

  next(): Promise<IteratorResult<T, undefined>> {
    const value = this.#buffer.shift();
    if (value !== undefined) return Promise.resolve({ value, done: false });
    if (this.#error) return Promise.reject(this.#error.reason);
    if (this.#closed) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.#waiting = { resolve, reject };
    });
  }

  #close(error: { readonly reason: unknown } | undefined): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#error = error;
    const waiting = this.#waiting;
    this.#waiting = undefined;
    if (!waiting) return;
    if (error) waiting.reject(error.reason);
    else waiting.resolve({ value: undefined, done: true });
  }
}
