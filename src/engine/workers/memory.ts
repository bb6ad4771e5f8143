import { byWorker, type WorkerStatus, type WorkerStatusStore } from "./port.ts";

/** Reports in this process's memory: for tests and the `memory` engine (one process, gateway and worker together). */
export class MemoryWorkerStatusStore implements WorkerStatusStore {
  readonly kind = "memory";
  readonly #reports = new Map<string, { status: WorkerStatus; expiresAt: number }>();

  async report(status: WorkerStatus, ttlMs: number): Promise<void> {
    this.#reports.set(status.worker, { status, expiresAt: Date.now() + ttlMs });
  }

  async remove(worker: string): Promise<void> {
    this.#reports.delete(worker);
  }

  async list(): Promise<WorkerStatus[]> {
    const now = Date.now();
    for (const [worker, report] of this.#reports) if (report.expiresAt <= now) this.#reports.delete(worker);
    return byWorker([...this.#reports.values()].map((r) => r.status));
  }

  async close(): Promise<void> {}
}
