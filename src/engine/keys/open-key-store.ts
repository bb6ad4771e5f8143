import type { Logger } from "../../observability/logger.ts";
import type { EngineConfig } from "../open-engine.ts";
import { MemoryKeyStore } from "./memory.ts";
import type { KeyStore } from "./port.ts";
import { SqliteKeyStore } from "./sqlite.ts";

/** Opens the key store beside the engine, from the engine's own configuration (the same data folder or Redis deployment). */
export async function openKeyStore(config: EngineConfig, logger?: Logger): Promise<KeyStore> {
  switch (config.kind) {
    case "memory":
      return new MemoryKeyStore();
    case "sqlite":
      return new SqliteKeyStore({ dataDir: config.dataDir });
    case "redis": {
      // Loaded only here, as the Redis engine is (decision 070).
      const { RedisKeyStore } = await import("./redis.ts");
      return new RedisKeyStore({
        target: config.target,
        ...(config.prefix ? { prefix: config.prefix } : {}),
        ...(logger ? { logger } : {}),
      });
    }
  }
}
