import type { ProjectedGeneration } from "../summary.ts";
import {
  newestFirst,
  type FoldToApply,
  type LiveQuery,
  type LiveRow,
  type ModelCounts,
  type ReadModelStore,
  type SearchPage,
  type SearchQuery,
  type WorkerActivity,
} from "./port.ts";
import { countModels, countWorkers } from "./counts.ts";

/** The read models in the process's memory: for tests, and a node without a data dir. */
export class MemoryReadModelStore implements ReadModelStore {
  readonly kind = "memory";
  readonly #rows = new Map<string, ProjectedGeneration>();
  readonly #positions = new Map<string, string>();

  async apply(folds: readonly FoldToApply[]): Promise<boolean[]> {
    return folds.map(({ generation, replace }) => {
      const kept = this.#rows.get(generation.summary.id);
      if (kept && replace !== true && kept.summary.lastOffset >= generation.summary.lastOffset) return false;
      this.#rows.set(generation.summary.id, generation);
      return true;
    });
  }

  async appliedOffset(id: string): Promise<number> {
    return this.#rows.get(id)?.summary.lastOffset ?? 0;
  }

  async position(reader: string): Promise<string | undefined> {
    return this.#positions.get(reader);
  }

  async setPosition(reader: string, position: string | undefined): Promise<void> {
    if (position === undefined) this.#positions.delete(reader);
    else this.#positions.set(reader, position);
  }

  async live(query?: LiveQuery): Promise<LiveRow[]> {
    const narrowed = query !== undefined && (query.lastEntryBefore !== undefined || query.ids !== undefined);
    const named = (g: ProjectedGeneration): boolean =>
      !narrowed ||
      (query.lastEntryBefore !== undefined && g.lastEntryAt < query.lastEntryBefore) ||
      (query.ids?.includes(g.summary.id) ?? false);
    return [...this.#rows.values()]
      .filter((g) => (g.summary.status === "queued" || g.summary.status === "running") && named(g))
      .map((g) => ({ summary: g.summary, lastEntryAt: g.lastEntryAt }))
      .sort((a, b) => -newestFirst(a.summary, b.summary));
  }

  async search(query: SearchQuery): Promise<SearchPage> {
    const { before } = query;
    const rows = [...this.#rows.values()]
      .map((g) => g.summary)
      .filter(
        (s) =>
          (query.id === undefined || s.id === query.id) &&
          (query.status === undefined || s.status === query.status) &&
          (query.model === undefined || s.model === query.model) &&
          (query.since === undefined || s.createdAt >= query.since) &&
          (query.until === undefined || s.createdAt < query.until) &&
          (before === undefined || s.createdAt < before.createdAt || (s.createdAt === before.createdAt && s.id < before.id)),
      )
      .sort(newestFirst);
    return { generations: rows.slice(0, query.limit), more: rows.length > query.limit };
  }

  async models(): Promise<ModelCounts[]> {
    return countModels([...this.#rows.values()]);
  }

  async failuresSince(since: string): Promise<{ code: string; count: number }[]> {
    const counts = new Map<string, number>();
    for (const { summary: s } of this.#rows.values()) {
      if (s.status === "failed" && s.endedAt !== undefined && s.endedAt >= since) {
        const code = s.errorCode ?? "";
        counts.set(code, (counts.get(code) ?? 0) + 1);
      }
    }
    return [...counts].map(([code, count]) => ({ code, count })).sort((a, b) => b.count - a.count || (a.code < b.code ? -1 : 1));
  }

  async workers(): Promise<WorkerActivity[]> {
    return countWorkers([...this.#rows.values()]);
  }

  async all(): Promise<ProjectedGeneration[]> {
    return [...this.#rows.values()].sort((a, b) => (a.summary.id < b.summary.id ? -1 : 1));
  }

  async clear(): Promise<void> {
    this.#rows.clear();
    this.#positions.clear();
  }

  async close(): Promise<void> {}
}
