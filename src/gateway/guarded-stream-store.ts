import { LifelineError } from "../core/errors.ts";
import type { StreamStore } from "../engine/streams/port.ts";
import { StreamContentionError } from "../engine/streams/streams.ts";
import { unavailableGuard } from "./guarded-engine.ts";

/**
 * The Durable Streams store as the gateway uses it, like `guardEngine`: a store that does not
 * answer (and a stream changed under every attempt) is `engine_unavailable` (503, retryable), not
 * an internal error. Programming errors pass through unchanged.
 */
export function guardStreamStore(store: StreamStore): StreamStore {
  const guard = unavailableGuard(`The ${store.kind} stream store`);
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
