import type { Entry } from "../core/entries.ts";

/** Where a follow stands. `resumed` is `live` again after a reconnect. */
export type FollowState = "connecting" | "live" | "reconnecting" | "resumed" | "ended";

/** What a follow yields, in order. */
export type FollowEvent =
  /** The next entry, applied once and in offset order; `text` is the answer's text right after it. */
  | { readonly type: "entry"; readonly entry: Entry; readonly cursor: string | undefined; readonly text: string }
  /** The text was dropped: the log follows again from offset 1 (after a failover the server could not vouch for). */
  | { readonly type: "reset" }
  | { readonly type: "state"; readonly state: FollowState };

/** How an answer ended. */
export type FinalStatus = "completed" | "failed" | "cancelled";

/** The outcome of a follow, when its log ended. */
export interface FinalAnswer {
  readonly text: string;
  readonly status: FinalStatus;
  /** The entries applied since the start of the follow (or the last reset). */
  readonly entries: readonly Entry[];
}

/** Options of {@link LifelineClient.follow}. */
export interface FollowOptions {
  /** Resume after this cursor: exactly what an earlier follow's `cursor` (the server's `id`) was. */
  readonly cursor?: string | undefined;
  /** The answer's text as of `cursor`, so `text` continues it. @defaultValue "" */
  readonly text?: string | undefined;
  /** Stops following (not the generation: see `cancel()`); `done` then rejects with the signal's reason. */
  readonly signal?: AbortSignal | undefined;
  /** Called with every event, as it happens (the async iterator gets the same events). */
  readonly onEvent?: ((event: FollowEvent) => void) | undefined;
  /**
   * The read token to follow with (`llt_…`, from the server that started the generation). When it
   * expires, the client's `readToken` gives the next one. @defaultValue the token `start` got, else one from `readToken` or the key
   */
  readonly token?: string | undefined;
}

/** Options of {@link LifelineClient.start}. */
export interface StartOptions {
  /** Makes the POST safe to repeat; generated (a random UUID) when not given, and reused on every retry. */
  readonly idempotencyKey?: string | undefined;
  readonly signal?: AbortSignal | undefined;
}
