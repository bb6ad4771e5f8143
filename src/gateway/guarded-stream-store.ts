import { LifelineError } from "../core/errors.ts";
import type { StreamStore } from "../engine/streams/port.ts";
import { StreamContentionError } from "../engine/streams/streams.ts";

/**
 * The Durable Streams store as the gateway uses it, like `guardEngine`: a store that does not
 * answer (and a stream changed under every attempt) is `engine_unavailable` (503, retryable), not
 * an internal error. Programming errors pass through unchanged.
 */
export function guardStreamStore(store: StreamStore): StreamStore {
  const translate = (error: unknown): never => {
    if (error instanceof LifelineError || error instanceof RangeError || error instanceof TypeError) throw error;
    throw new LifelineError("engine_unavailable", `The ${store.kind} stream store does not answer: ${(error as Error).message}`);
  };
  const guard =
    <A extends unknown[], R>(call: (...args: A) => Promise<R>) =>
    (...args: A): Promise<R> => {
      try {
        return call(...args).then(undefined, translate);
      } catch (error) {
        return Promise.reject(error).then(undefined, translate);
      }
    };
  return {
    kind: store.kind,
    load: guard((...a: Parameters<StreamStore["load"]>) => store.load(...a)),
    commit: guard((...a: Parameters<StreamStore["commit"]>) => store.commit(...a)),
    read: guard((...a: Parameters<StreamStore["read"]>) => store.read(...a)),
    touch: guard((...a: Parameters<StreamStore["touch"]>) => store.touch(...a)),
    wait: guard((...a: Parameters<StreamStore["wait"]>) => store.wait(...a)),
    close: () => store.close(),
  };
}

/** A stream that kept changing under every attempt of one request: retry later, like a busy store. */
export function contentionAsUnavailable(error: unknown): never {
  if (error instanceof StreamContentionError) throw new LifelineError("engine_unavailable", error.message);
  throw error;
}
