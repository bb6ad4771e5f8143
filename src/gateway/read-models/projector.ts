import { setTimeout as pause } from "node:timers/promises";
import { readLog } from "../../engine/read-log.ts";
import type { EntryType } from "../../core/entries.ts";
import type { Change, Engine } from "../../engine/port.ts";
import type { Logger } from "../../observability/logger.ts";
import { turnWhenLong, yieldIfLong } from "../../observability/turns.ts";
import type { FoldToApply, LiveRow, ReadModelStore } from "../../projections/store/port.ts";
import { projectGeneration } from "../../projections/summary.ts";

/** Options of {@link Projector}. */
export interface ProjectorOptions {
  /** The engine whose logs are projected (the archive-backed view is fine: it reads the same logs). */
  readonly engine: Engine;
  readonly store: ReadModelStore;
  readonly logger?: Logger;
  /** An answer running or queued whose last entry is older than this is stuck. */
  readonly stuckAfterMs: number;
  /** Called with the number of stuck answers after each look at the live ones (the `lifeline_stuck_answers` gauge). */
  readonly onStuck?: (count: number) => void;
  /** How often the live answers are looked at (their deltas are not in the change feed). @defaultValue 2 000 ms */
  readonly liveEveryMs?: number;
  /** Feed records per page. @defaultValue 200 */
  readonly pageSize?: number;
  /**
   * Once the feed is read to its end, how long the next page waits to gather what comes in
   * meanwhile (decision 071). A page is never held while a full one stands. @defaultValue 100 ms
   */
  readonly gatherMs?: number;
  /** The name the feed position is kept under. @defaultValue "projector" */
  readonly reader?: string;
}

/** A log to fold, and the type of the feed record that named it (if one did). */
interface NamedLog {
  readonly id: string;
  readonly named?: EntryType | undefined;
}

/** A log's fold to store, with the type of the feed record that named the log. */
type Fold = FoldToApply & { readonly named: EntryType | undefined };

/** Logs stored in one transaction, at most. */
const FOLDS_PER_STEP = 50;
/**
 * Logs of a step read at once: a reply is parsed whole when it comes in, so fifty long logs read
 * together were one long turn of the gateway, while the answers that had just ended still had
 * their last entries to deliver.
 */
const READS_AT_ONCE = 4;

/** Ids per narrowed query of the store (sqlite's expression depth and parameters are bounded). */
const IDS_PER_QUERY = 500;
/** Live answers whose reads are asked at once (at most three each): a step's reads are not cut by a turn. */
const LOOKS_PER_STEP = 50;
/** Every how many looks the queued answers that could be stuck are read too. */
const QUEUED_SWEEP_EVERY = 10;

/** The name the live projector keeps its feed position under. */
export const PROJECTOR_READER = "projector";

/**
 * Keeps the read models (decision 037) up with the logs. It follows the engine's change feed from
 * the position recorded in the store and, for each log named there, folds the whole log again
 * unless the store has applied its last entry already; the store keeps a row only when it covers
 * more of its log than the row before. So the projector is restartable (it resumes at its
 * position), applying a record twice changes nothing, and several gateways may project at once.
 *
 * Deltas are not in the feed (they must cost nothing more), so the live answers are looked at
 * every `liveEveryMs`: each whose log grew is folded again, and those whose last entry is older
 * than `stuckAfterMs` are counted as stuck.
 */
export class Projector {
  readonly #options: ProjectorOptions;
  readonly #stop = new AbortController();
  #running: Promise<unknown> | undefined;
  #position: string | undefined;
  /** The last entry's time of each live answer whose log grew by tokens since its fold, as the last look saw it. */
  #lastEntries = new Map<string, string>();
  /** Live answers claimed (so the feed said) whose fold found no `started` yet. */
  readonly #awaitingStart = new Set<string>();
  /** Looks so far: every tenth reads the queued answers too. */
  #looks = 0;

  constructor(options: ProjectorOptions) {
    this.#options = options;
  }

  /** Starts following the feed and looking at live answers; returns at once. */
  start(): void {
    this.#running ??= Promise.all([this.#follow(), this.#watchLive()]);
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#running;
  }

  /**
   * Folds the log of `id` into the store unless the store has applied all of it. A log shorter
   * than what was applied lost entries (a Redis failover; its worker writes them again): its fold
   * replaces the row, which described entries that no longer stand. Returns whether it stored.
   * `named` is the type of the feed record that named the log: after a claim's (`started`), a fold
   * that found no attempt yet (the worker had not written its `started`) is looked at again with
   * the live answers.
   */
  async project(id: string, named?: EntryType): Promise<boolean> {
    return (await this.#projectEach([{ id, named }])).length > 0;
  }

  /** Folds every log the engine holds (a rebuild, or after a gap in the feed). */
  async projectAll(signal?: AbortSignal): Promise<number> {
    let projected = 0;
    let after: string | undefined;
    do {
      const page = await this.#options.engine.generations(after, 200);
      projected += (
        await this.#projectInSteps(
          page.ids.map((id) => ({ id })),
          signal,
        )
      ).length;
      if (signal?.aborted) return projected;
      after = page.next;
    } while (after !== undefined);
    return projected;
  }

  /**
   * {@link project} for each of `logs`, {@link FOLDS_PER_STEP} at a time, the loop turning between
   * steps once a slice is spent; stops between steps once `signal` aborts. Returns the ids stored.
   */
  async #projectInSteps(logs: readonly NamedLog[], signal?: AbortSignal): Promise<string[]> {
    const stored: string[] = [];
    for (let i = 0; i < logs.length; i += FOLDS_PER_STEP) {
      await turnWhenLong();
      if (signal?.aborted) break;
      stored.push(...(await this.#projectEach(logs.slice(i, i + FOLDS_PER_STEP), signal)));
    }
    return stored;
  }

  /**
   * {@link project} for each of `logs`: their logs read {@link READS_AT_ONCE} at a time (on Redis,
   * pipelined round trips instead of three per answer in turn) and their folds stored in one
   * transaction, one commit for the step instead of one per answer. Returns the ids stored.
   */
  async #projectEach(logs: readonly NamedLog[], signal?: AbortSignal): Promise<string[]> {
    const read: (Fold | undefined)[] = [];
    let next = 0;
    let failed = false; // one read failed: the others stop too, and the step is done again
    const reader = async (): Promise<void> => {
      while (next < logs.length && !failed && signal?.aborted !== true) {
        const i = next++;
        try {
          read[i] = await this.#fold(logs[i]!);
        } catch (error) {
          failed = true;
          throw error;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(READS_AT_ONCE, logs.length) }, reader));
    if (signal?.aborted) return []; // stopped part way: nothing of the step is stored
    const folds = read.filter((fold) => fold !== undefined);
    if (folds.length === 0) return [];
    const stored = await this.#options.store.apply(folds);
    // Noted once its row stands, so a look that reads the rows meanwhile cannot drop it.
    for (const { generation, named } of folds) {
      if (named === "started" && generation.summary.status === "queued") this.#awaitingStart.add(generation.summary.id);
      else this.#awaitingStart.delete(generation.summary.id);
    }
    return folds.filter((_, i) => stored[i]).map((fold) => fold.generation.summary.id);
  }

  /** The fold of a log the store has not applied all of, or `undefined`. */
  async #fold({ id, named }: NamedLog): Promise<Fold | undefined> {
    const { engine, store } = this.#options;
    const applied = await store.appliedOffset(id);
    if (applied > 0) {
      // Folded before: read the log again only if it changed (a row new to the store is read at once).
      const head = await engine.head(id);
      if (!head) return undefined;
      if (head.lastOffset === applied) {
        if (named === "started" && applied === 1) this.#awaitingStart.add(id);
        return undefined;
      }
    }
    // The logs of a step are read at once: each read (sqlite's take CPU, not I/O) and each fold
    // waits for a turn once the slice is spent, looking right before its work (no promise between
    // the look and the work, or every log of the step would look before any had worked).
    for (let turn = yieldIfLong(); turn; turn = yieldIfLong()) await turn;
    const entries = await readLog(engine, id);
    if (entries.length === 0) return undefined;
    for (let turn = yieldIfLong(); turn; turn = yieldIfLong()) await turn;
    const generation = projectGeneration(id, entries);
    return { generation, replace: generation.summary.lastOffset < applied, named };
  }

  /**
   * Looks at the live answers that may be stuck and counts the stuck ones. Only two kinds are read:
   * running ones whose newest entry known here is old enough that they would be counted stuck
   * within the next two looks, and those claimed before their worker wrote its `started` (a queued
   * answer otherwise changes only by records of the feed; every tenth look reads the queued ones
   * too, in case a record was missed). So an answer that streams is read about once per
   * `stuckAfterMs`, not at every look, and a gateway with thousands of answers waiting for a worker
   * reads them once every ten looks. An answer whose log grew by tokens after its fold
   * only has its last entry's time noted, in this process (two entries read, not the log folded
   * again nor a row written: a long answer would be folded whole every few seconds); one whose next
   * entry is anything else (its `started`, a `retrying`), or whose log shrank, is folded.
   */
  async lookAtLive(now = Date.now()): Promise<number> {
    const { engine, stuckAfterMs } = this.#options;
    const margin = 2 * (this.#options.liveEveryMs ?? 2_000);
    // The rows whose newest entry the store knows is old enough, and the claimed ones awaiting their
    // `started`; every other live answer had an entry recently enough not to be stuck.
    const awaited = [...this.#awaitingStart];
    const rows = await this.#liveRows(new Date(now - stuckAfterMs + margin).toISOString(), awaited);
    const known = new Map<string, string>();
    for (const row of rows) known.set(row.summary.id, this.lastEntryAt(row.summary.id, row.lastEntryAt));
    // A queued answer changes only by records of the feed (its claim, its cancel), but for the
    // `started` its worker writes after the claim: it is read while that is awaited. Every tenth
    // look also reads the queued ones that could be stuck, in case a claim's record was missed (a
    // gap in the feed, a restart between the claim and its `started`).
    const sweepQueued = this.#looks++ % QUEUED_SWEEP_EVERY === 0;
    const suspects = rows.filter(
      ({ summary }) =>
        this.#awaitingStart.has(summary.id) ||
        ((summary.status === "running" || sweepQueued) && now - Date.parse(known.get(summary.id)!) > stuckAfterMs - margin),
    );
    // Their reads a slice at a time (on Redis one pipelined round trip per step, not three per
    // answer in turn); the folds, rarer, one after another. The loop turns between them once a
    // slice is spent: on sqlite the reads never wait, and a thousand answers' were one step.
    const looks: ({ id: string; tokensUntil: string | undefined } | undefined)[] = [];
    const stopped = this.#stop.signal;
    for (let i = 0; i < suspects.length; i += LOOKS_PER_STEP) {
      await turnWhenLong();
      if (stopped.aborted) return 0; // a stop does not wait for the rest of a long look
      const step = suspects.slice(i, i + LOOKS_PER_STEP).map(async ({ summary }) => {
        const head = await engine.head(summary.id);
        if (!head || head.lastOffset === summary.lastOffset) return undefined;
        // The entry after the fold: a `started` written after its claim's record was read, say, is
        // folded; a run of tokens is not.
        const [next] = head.lastOffset > summary.lastOffset ? await engine.read(summary.id, summary.lastOffset, 1) : [];
        const [last] = next?.type === "delta" ? await engine.read(summary.id, head.lastOffset - 1, 1) : [];
        return { id: summary.id, tokensUntil: last?.type === "delta" ? last.at : undefined };
      });
      looks.push(...(await Promise.all(step)));
    }
    const toFold: NamedLog[] = [];
    for (const look of looks) {
      if (look?.tokensUntil !== undefined) known.set(look.id, look.tokensUntil);
      else if (look) toFold.push({ id: look.id });
    }
    const folded = await this.#projectInSteps(toFold, stopped);
    if (stopped.aborted) return 0;
    // A folded row says when its newest entry was (it may have ended: then it is not live).
    if (folded.length > 0) {
      for (const id of folded) known.delete(id);
      for (const row of await this.#liveRows(undefined, folded)) known.set(row.summary.id, row.lastEntryAt);
    }
    // What this process saw beyond the rows (an answer not read here had a recent enough row).
    const seen = new Map<string, string>();
    for (const row of rows) {
      const at = known.get(row.summary.id);
      if (at !== undefined && at > row.lastEntryAt) seen.set(row.summary.id, at);
    }
    this.#lastEntries = seen;
    // An awaited answer no longer live, or whose `started` is folded (here or by another gateway), is not awaited.
    const byId = new Map(rows.map((row) => [row.summary.id, row]));
    for (const id of awaited) if (byId.get(id)?.summary.status !== "queued") this.#awaitingStart.delete(id);
    let stuck = 0;
    for (const row of rows) {
      const at = known.get(row.summary.id);
      if (at !== undefined && now - Date.parse(at) > stuckAfterMs) stuck += 1;
    }
    this.#options.onStuck?.(stuck);
    return stuck;
  }

  /** The live rows whose newest entry is before `lastEntryBefore`, and those of `ids` (asked in parts: a query has a size). */
  async #liveRows(lastEntryBefore: string | undefined, ids: readonly string[]): Promise<LiveRow[]> {
    const { store } = this.#options;
    const rows = new Map<string, LiveRow>();
    if (lastEntryBefore !== undefined) for (const row of await store.live({ lastEntryBefore })) rows.set(row.summary.id, row);
    for (let i = 0; i < ids.length; i += IDS_PER_QUERY)
      for (const row of await store.live({ ids: ids.slice(i, i + IDS_PER_QUERY) })) rows.set(row.summary.id, row);
    return [...rows.values()];
  }

  /** The last entry's time of a live answer: the one its row keeps, or a later one the last look saw. */
  lastEntryAt(id: string, kept: string): string {
    const seen = this.#lastEntries.get(id);
    return seen !== undefined && seen > kept ? seen : kept;
  }

  async #follow(): Promise<void> {
    const { engine, store, logger } = this.#options;
    const reader = this.#options.reader ?? PROJECTOR_READER;
    const pageSize = this.#options.pageSize ?? 200;
    const gatherMs = this.#options.gatherMs ?? 100;
    const signal = this.#stop.signal;
    let failures = 0;
    let loaded = false;
    while (!signal.aborted) {
      try {
        if (!loaded) {
          this.#position = await store.position(reader);
          loaded = true;
        }
        const page = await engine.changes(this.#position, pageSize);
        if (page.gap) {
          logger?.warn({ position: this.#position }, "projector: the change feed dropped records before they were read; folding every log");
          await this.projectAll(signal);
          if (signal.aborted) return; // stopped part way: the position stays where the folds are
        }
        if (page.changes.length === 0) {
          await engine.waitForChanges(this.#position, signal);
          continue;
        }
        await this.#apply(page.changes, signal);
        // Stopped part way through the page: the position stays before it, so the next start folds it again.
        if (signal.aborted) return;
        const last = page.changes.at(-1)!;
        await store.setPosition(reader, last.position);
        this.#position = last.position;
        failures = 0;
        // Caught up: the records of the next moments go in one page, each log folded once for all
        // of them (an answer's created and started come together), with one position written.
        if (page.changes.length < pageSize && gatherMs > 0) await pause(gatherMs, undefined, { signal }).catch(() => undefined);
      } catch (error) {
        if (signal.aborted) return;
        failures += 1;
        const delay = Math.min(5_000, 100 * 2 ** Math.min(failures, 10));
        logger?.warn({ err: (error as Error).message, retryInMs: delay, store: store.kind }, "projector: a step failed; trying again");
        await pause(delay, undefined, { signal }).catch(() => undefined);
      }
    }
  }

  /** Each log of a page once, however many of its records the page holds. */
  async #apply(changes: readonly Change[], signal: AbortSignal): Promise<void> {
    await this.#projectInSteps(
      [...new Set(changes.map((c) => c.id))].map((id) => ({ id, named: lastType(changes, id) })),
      signal,
    );
  }

  async #watchLive(): Promise<void> {
    const signal = this.#stop.signal;
    const every = this.#options.liveEveryMs ?? 2_000;
    while (!signal.aborted) {
      try {
        await this.lookAtLive();
      } catch (error) {
        if (!signal.aborted) this.#options.logger?.warn({ err: (error as Error).message }, "projector: looking at live answers failed");
      }
      await pause(every, undefined, { signal }).catch(() => undefined);
    }
  }
}

/** The type of the last record of `changes` that names `id`. */
function lastType(changes: readonly Change[], id: string): EntryType | undefined {
  for (let i = changes.length - 1; i >= 0; i -= 1) if (changes[i]!.id === id) return changes[i]!.type;
  return undefined;
}
