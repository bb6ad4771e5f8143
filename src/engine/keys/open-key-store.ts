import type { Logger } from "../../observability/logger.ts";
import type { EngineConfig } from "../open-engine.ts";
import { MemoryKeyStore } from "./memory.ts";
import type { KeyStore } from "./port.ts";
import { RedisKeyStore } from "./redis.ts";
import { SqliteKeyStore } from "./sqlite.ts";

/** Opens the key store beside the engine, from the engine's own configuration (the same data folder or Redis deployment). */
export function openKeyStore(config: EngineConfig, logger?: Logger): KeyStore {
  switch (config.kind) {
    case "memory":
      return new MemoryKeyStore();
    case "sqlite":
      return new SqliteKeyStore({ dataDir: config.dataDir });
    case "redis":
      return new RedisKeyStore({
        target: config.target,
        ...(config.prefix ? { prefix: config.prefix } : {}),
        ...(logger ? { logger } : {}),
      });
  }
}
