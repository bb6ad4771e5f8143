import type { FaultKind } from "./options.ts";

/** Counters of a running simulator, as `GET /stats` serves them. */
export interface SimLlmStats {
  /** Model requests received (`POST /v1/chat/completions` and `POST /v1/messages`). */
  readonly requests: number;
  /** Of those, refused with a 4xx before any fault (bad JSON, bad body, bad `x-sim-fault`). */
  readonly badRequests: number;
  /** Answers sent to their end. */
  readonly completed: number;
  /** Faults injected, by kind. */
  readonly faults: Readonly<Record<Exclude<FaultKind, "none">, number>>;
  /** Answers in progress: accepted, not yet ended, cut or abandoned. */
  readonly openStreams: number;
  /** Answers whose client closed the connection before the end (a stalled answer ends this way). */
  readonly abortedByClient: number;
  /** Content tokens handed to clients' sockets (a `stream: false` answer's, once its body is written). */
  readonly tokensSent: number;
  /**
   * Bytes of the answers in progress that were written but are still waiting for their sockets: a
   * client that stops reading holds this near the socket's high-water mark, not its answer's length.
   */
  readonly bufferedBytes: number;
}

/** The counters the server keeps; `bufferedBytes` is read from the open sockets when a snapshot is taken. */
export type MutableSimLlmStats = {
  -readonly [K in Exclude<keyof SimLlmStats, "bufferedBytes">]: K extends "faults"
    ? Record<Exclude<FaultKind, "none">, number>
    : SimLlmStats[K];
};

export function emptyStats(): MutableSimLlmStats {
  return {
    requests: 0,
    badRequests: 0,
    completed: 0,
    faults: { error: 0, "rate-limit": 0, stall: 0, cut: 0, "slow-first-token": 0 },
    openStreams: 0,
    abortedByClient: 0,
    tokensSent: 0,
  };
}

/** A deep copy, so a caller's snapshot does not move under it; `bufferedBytes` as measured now. */
export function snapshotStats(stats: MutableSimLlmStats, bufferedBytes: number): SimLlmStats {
  return { ...stats, faults: { ...stats.faults }, bufferedBytes };
}
