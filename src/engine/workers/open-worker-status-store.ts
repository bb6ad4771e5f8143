import type { Logger } from "../../observability/logger.ts";
import type { EngineConfig } from "../open-engine.ts";
import { MemoryWorkerStatusStore } from "./memory.ts";
import type { WorkerStatusStore } from "./port.ts";
import { SqliteWorkerStatusStore } from "./sqlite.ts";

/**
 * Opens the worker status store beside the engine, from the engine's own configuration (the same
 * data folder or Redis deployment and prefix). A process opens one, for its worker and its gateway.
 */
export async function openWorkerStatusStore(config: EngineConfig, logger?: Logger): Promise<WorkerStatusStore> {
  switch (config.kind) {
    case "memory":
      return new MemoryWorkerStatusStore();
    case "sqlite":
      return new SqliteWorkerStatusStore({ dataDir: config.dataDir });
    case "redis": {
      // Loaded only here, as the Redis engine is (decision 070).
      const { RedisWorkerStatusStore } = await import("./redis.ts");
      return new RedisWorkerStatusStore({
        target: config.target,
        ...(config.prefix ? { prefix: config.prefix } : {}),
        ...(logger ? { logger } : {}),
      });
    }
  }
}
