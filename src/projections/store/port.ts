import type { ProjectedGeneration, Summary, WorkerPart } from "../summary.ts";

/**
 * Where the read models across answers are kept (decision 037): one row per generation (its
 * summary, what its counts are built from, and the last offset of its log applied), and the
 * position of the change feed applied. Adapters: memory, sqlite (a file in the data dir), and
 * PostgreSQL (LIFELINE_POSTGRES_URL). Counts per model and per worker are sums over the rows, so
 * a row replaced by a newer fold of its log changes them by exactly its difference.
 */
export interface ReadModelStore {
  readonly kind: string;

  /**
   * Stores each fold unless the row kept has applied as much of its log or more (or the fold
   * replaces it): applying the same fold again, an older one, or one another projector stored
   * first, changes nothing. All of them in one transaction: a step of the projector is one commit,
   * not one per answer. A store whose rows are locked one by one takes them in the order of their
   * ids ({@link inIdOrder}), so projectors sharing it cannot deadlock. Returns, for each fold in the
   * order given, whether it stored.
   */
  apply(folds: readonly FoldToApply[]): Promise<boolean[]>;

  /** The last offset applied for `id`, or 0 when there is no row. */
  appliedOffset(id: string): Promise<number>;

  /** The change feed position applied, under the name `reader`. */
  position(reader: string): Promise<string | undefined>;
  setPosition(reader: string, position: string | undefined): Promise<void>;

  /** Answers queued or running, oldest first; with `query`, only those it names. */
  live(query?: LiveQuery): Promise<LiveRow[]>;

  /** Answers matching `query`, newest first, one page. */
  search(query: SearchQuery): Promise<SearchPage>;

  /** Counts per model and provider (the route that served the last attempt). */
  models(): Promise<ModelCounts[]>;

  /** Failed answers that ended at or after `since` (ISO time), by error code. */
  failuresSince(since: string): Promise<{ code: string; count: number }[]>;

  /** Per-worker activity across every answer kept. */
  workers(): Promise<WorkerActivity[]>;

  /** Every row, by id: for comparing a rebuild with what was projected live. */
  all(): Promise<ProjectedGeneration[]>;

  /** Drops every row and position (a rebuild starts from nothing). */
  clear(): Promise<void>;

  close(): Promise<void>;
}

/** A fold of one log, to store as its row. */
export interface FoldToApply {
  readonly generation: ProjectedGeneration;
  /**
   * Store the fold even though the row kept applied more of the log: the log itself is now shorter
   * (a Redis failover lost acknowledged entries, and the worker wrote its end again), so the row
   * kept describes entries that no longer stand.
   */
  readonly replace?: boolean;
}

/** The indexes of `folds` in the order of their ids. */
export function inIdOrder(folds: readonly FoldToApply[]): number[] {
  return folds.map((_, i) => i).sort((a, b) => (folds[a]!.generation.summary.id < folds[b]!.generation.summary.id ? -1 : 1));
}

/** Which live answers to read: those whose last entry is older than `lastEntryBefore`, and those named in `ids`. */
export interface LiveQuery {
  /** ISO time. */
  readonly lastEntryBefore?: string;
  readonly ids?: readonly string[];
}

export interface LiveRow {
  readonly summary: Summary;
  readonly lastEntryAt: string;
}

export interface SearchQuery {
  readonly id?: string;
  readonly status?: Summary["status"];
  readonly model?: string;
  /** Created at or after (ISO time). */
  readonly since?: string;
  /** Created before (ISO time). */
  readonly until?: string;
  readonly limit: number;
  /** Rows created before this one (`createdAt` and `id` of the last row of the previous page). */
  readonly before?: { readonly createdAt: string; readonly id: string };
}

export interface SearchPage {
  readonly generations: Summary[];
  /** There are more rows past the last one. */
  readonly more: boolean;
}

export interface ModelCounts {
  readonly model: string;
  readonly provider: string;
  readonly answers: number;
  readonly completed: number;
  readonly failed: number;
  readonly retries: number;
  readonly breakerOpens: number;
  readonly failuresByCode: Record<string, number>;
}

export type WorkerActivity = Omit<WorkerPart, "lastSeenAt"> & { readonly lastSeenAt: string };

/** Orders rows as the search pages them: newest first, then by id. */
export function newestFirst(a: Summary, b: Summary): number {
  if (a.createdAt !== b.createdAt) return a.createdAt < b.createdAt ? 1 : -1;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}
