import type { Logger } from "../../observability/logger.ts";
import { connectRedis, type RedisClient, type RedisTarget } from "../redis/connection.ts";
import { RedisKeys } from "../redis/keys.ts";
import { byWorker, type WorkerStatus, type WorkerStatusStore } from "./port.ts";

/**
 * A member of the index whose report expired this long ago is dropped from it. The report's own
 * key expires on the server's clock; the index's scores are the workers' clocks, so members are
 * pruned only well past their time (a worker whose clock is behind re-adds itself at its next report).
 */
const PRUNE_AFTER_MS = 60_000;

/**
 * Reports in Redis under one hash tag (one Cluster slot): each worker's report is a string with a
 * time to live (`SET … PX`), so a dead worker's report goes by itself; a sorted set indexes the
 * names. Reporting is one `MULTI` on that slot; a list is one `ZRANGE` and one `MGET`.
 */
export class RedisWorkerStatusStore implements WorkerStatusStore {
  readonly kind = "redis";
  readonly #keys: RedisKeys;
  readonly #client: RedisClient;

  constructor(options: { readonly target: RedisTarget; readonly prefix?: string; readonly logger?: Logger }) {
    this.#keys = new RedisKeys(options.prefix ?? "ll");
    this.#client = connectRedis(options.target, "lifeline-workers", { logger: options.logger });
  }

  async report(status: WorkerStatus, ttlMs: number): Promise<void> {
    await this.#client
      .multi()
      .set(this.#keys.workerStatus(status.worker), JSON.stringify(status), "PX", ttlMs)
      .zadd(this.#keys.workerIndex(), Date.now() + ttlMs, status.worker)
      .exec();
  }

  async remove(worker: string): Promise<void> {
    await this.#client.multi().del(this.#keys.workerStatus(worker)).zrem(this.#keys.workerIndex(), worker).exec();
  }

  async list(): Promise<WorkerStatus[]> {
    await this.#client.zremrangebyscore(this.#keys.workerIndex(), "-inf", Date.now() - PRUNE_AFTER_MS);
    const workers = await this.#client.zrange(this.#keys.workerIndex(), 0, -1);
    if (workers.length === 0) return [];
    const reports = await this.#client.mget(...workers.map((w) => this.#keys.workerStatus(w)));
    return byWorker(reports.filter((r): r is string => r !== null).map((r) => JSON.parse(r) as WorkerStatus));
  }

  async close(): Promise<void> {
    this.#client.disconnect();
  }
}
