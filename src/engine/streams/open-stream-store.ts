import type { Logger } from "../../observability/logger.ts";
import type { EngineConfig } from "../open-engine.ts";
import { MemoryStreamStore } from "./memory.ts";
import type { StreamStore } from "./port.ts";
import { SqliteStreamStore } from "./sqlite.ts";

/**
 * Opens the Durable Streams store beside the engine, from the engine's own configuration: the
 * same data folder (a file of its own) or the same Redis deployment and key prefix.
 */
export async function openStreamStore(config: EngineConfig, logger?: Logger): Promise<StreamStore> {
  switch (config.kind) {
    case "memory":
      return new MemoryStreamStore();
    case "sqlite":
      return new SqliteStreamStore({ dataDir: config.dataDir, ...(config.synchronous ? { synchronous: config.synchronous } : {}) });
    case "redis": {
      // Loaded only here, as the Redis engine is (decision 070).
      const { RedisStreamStore } = await import("./redis.ts");
      return new RedisStreamStore({
        target: config.target,
        ...(config.prefix ? { prefix: config.prefix } : {}),
        ...(logger ? { logger } : {}),
      });
    }
  }
}
