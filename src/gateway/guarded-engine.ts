import { LifelineError } from "../core/errors.ts";
import type { Engine } from "../engine/port.ts";

/**
 * The engine as the gateway uses it: by the port's contract an engine only throws when the store
 * does not answer, so every rejection becomes `engine_unavailable` (503) — a retryable answer,
 * not an internal error. Programming errors (RangeError, TypeError) pass through unchanged.
 */
export function guardEngine(engine: Engine): Engine {
  const guard = unavailableGuard(`The ${engine.kind} engine`);
  return {
    kind: engine.kind,
    replicatesAsynchronously: engine.replicatesAsynchronously,
    parallelClaims: engine.parallelClaims,
    create: guard((...a: Parameters<Engine["create"]>) => engine.create(...a)),
    findCreated: guard((...a: Parameters<Engine["findCreated"]>) => engine.findCreated(...a)),
    append: guard((...a: Parameters<Engine["append"]>) => engine.append(...a)),
    read: guard((...a: Parameters<Engine["read"]>) => engine.read(...a)),
    head: guard((...a: Parameters<Engine["head"]>) => engine.head(...a)),
    wait: guard((...a: Parameters<Engine["wait"]>) => engine.wait(...a)),
    claim: guard((...a: Parameters<Engine["claim"]>) => engine.claim(...a)),
    renew: guard((...a: Parameters<Engine["renew"]>) => engine.renew(...a)),
    renewAll: guard((...a: Parameters<Engine["renewAll"]>) => engine.renewAll(...a)),
    release: guard((...a: Parameters<Engine["release"]>) => engine.release(...a)),
    cancel: guard((...a: Parameters<Engine["cancel"]>) => engine.cancel(...a)),
    setChatGeneration: guard((...a: Parameters<Engine["setChatGeneration"]>) => engine.setChatGeneration(...a)),
    chatGeneration: guard((...a: Parameters<Engine["chatGeneration"]>) => engine.chatGeneration(...a)),
    changes: guard((...a: Parameters<Engine["changes"]>) => engine.changes(...a)),
    waitForChanges: guard((...a: Parameters<Engine["waitForChanges"]>) => engine.waitForChanges(...a)),
    generations: guard((...a: Parameters<Engine["generations"]>) => engine.generations(...a)),
    ping: guard(() => engine.ping()),
    close: () => engine.close(),
  };
}

/** Wraps a store's calls: a rejection is `engine_unavailable` naming `what`; a programming error passes through. */
export type UnavailableGuard = <A extends unknown[], R>(call: (...args: A) => Promise<R>) => (...args: A) => Promise<R>;

/** The guard of {@link guardEngine}, for any store the gateway calls (`what`: "The sqlite engine", say). */
export function unavailableGuard(what: string): UnavailableGuard {
  const translate = (error: unknown): never => {
    if (error instanceof LifelineError || error instanceof RangeError || error instanceof TypeError) throw error;
    throw new LifelineError("engine_unavailable", `${what} does not answer: ${(error as Error).message}`);
  };
  // A plain `then` rather than an async wrapper: a call that waits long (a follower's `wait`)
  // holds one promise, not a suspended function.
  return (call) =>
    (...args) => {
      try {
        return call(...args).then(undefined, translate);
      } catch (error) {
        return Promise.reject(error).then(undefined, translate);
      }
    };
}
