/** A lease a worker holds, as its status report shows it. */
export interface ReportedLease {
  /** The generation. */
  readonly id: string;
  readonly fence: number;
  /** When the worker claimed it (ISO 8601). */
  readonly since: string;
}

/** A provider's circuit breaker in a worker, as its status report shows it. */
export interface ReportedBreaker {
  readonly provider: string;
  readonly state: "closed" | "open" | "half-open";
  /** When it last opened (ISO 8601); absent while closed. */
  readonly openedAt?: string;
}

/** What one worker says of itself every few seconds (decision 041). */
export interface WorkerStatus {
  readonly worker: string;
  /** When the worker reported this (ISO 8601, its own clock). */
  readonly seenAt: string;
  readonly leases: readonly ReportedLease[];
  readonly breakers: readonly ReportedBreaker[];
}

/**
 * Where workers report what they hold (leases) and how their providers fare (breakers), beside the
 * engine and in the same store, so any gateway can show every worker on `/ops`. A report expires:
 * a worker that stops reporting (killed, cut off) disappears after its time to live, without a
 * word from it. Not a source of truth for leases (the engine's fences are); a picture of the last
 * few seconds. Adapters sit beside this file; one conformance suite proves each
 * (`test/engine/workers.test.ts`).
 */
export interface WorkerStatusStore {
  readonly kind: string;
  /** Records `status`, replacing the worker's previous report, until `ttlMs` from now. */
  report(status: WorkerStatus, ttlMs: number): Promise<void>;
  /** Drops a worker's report at once (a worker that stops gracefully). */
  remove(worker: string): Promise<void>;
  /** Every report that has not expired, by worker name. */
  list(): Promise<WorkerStatus[]>;
  close(): Promise<void>;
}

/** Reports in a stable order: by worker name. */
export function byWorker(statuses: WorkerStatus[]): WorkerStatus[] {
  return statuses.sort((a, b) => (a.worker < b.worker ? -1 : a.worker > b.worker ? 1 : 0));
}
