import type { ProjectedGeneration } from "../summary.ts";
import type { ModelCounts, WorkerActivity } from "./port.ts";

/**
 * The counts across answers, summed from the rows: the memory store's, the SQL stores' reading
 * of their rows, and what a test computes on its own from the logs.
 */
export function countModels(rows: readonly ProjectedGeneration[]): ModelCounts[] {
  const byKey = new Map<string, { -readonly [K in keyof ModelCounts]: ModelCounts[K] }>();
  for (const { summary: s, provider, breakerOpens } of rows) {
    const key = JSON.stringify([s.model, provider]);
    let c = byKey.get(key);
    if (!c) {
      c = { model: s.model, provider, answers: 0, completed: 0, failed: 0, retries: 0, breakerOpens: 0, failuresByCode: {} };
      byKey.set(key, c);
    }
    c.answers += 1;
    if (s.status === "completed") c.completed += 1;
    if (s.status === "failed") {
      c.failed += 1;
      const code = s.errorCode ?? "";
      c.failuresByCode[code] = (c.failuresByCode[code] ?? 0) + 1;
    }
    c.retries += s.retries;
    c.breakerOpens += breakerOpens;
  }
  return sortModels([...byKey.values()]);
}

/** Models in the order every store answers with: by model, then provider. */
export function sortModels(models: ModelCounts[]): ModelCounts[] {
  return models.sort((a, b) =>
    a.model !== b.model ? (a.model < b.model ? -1 : 1) : a.provider < b.provider ? -1 : a.provider > b.provider ? 1 : 0,
  );
}

export function countWorkers(rows: readonly ProjectedGeneration[]): WorkerActivity[] {
  const byWorker = new Map<string, { -readonly [K in keyof WorkerActivity]: WorkerActivity[K] }>();
  for (const row of rows) {
    for (const part of row.workers) {
      const w = byWorker.get(part.worker) ?? { worker: part.worker, attempts: 0, takeovers: 0, finished: 0, lastSeenAt: part.lastSeenAt };
      w.attempts += part.attempts;
      w.takeovers += part.takeovers;
      w.finished += part.finished;
      if (part.lastSeenAt > w.lastSeenAt) w.lastSeenAt = part.lastSeenAt;
      byWorker.set(part.worker, w);
    }
  }
  return [...byWorker.values()].sort((a, b) => (a.worker < b.worker ? -1 : 1));
}
