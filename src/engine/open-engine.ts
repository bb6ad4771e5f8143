import type { Logger } from "../observability/logger.ts";
import { MemoryEngine } from "./memory/memory-engine.ts";
import type { Engine } from "./port.ts";
import type { RedisTarget } from "./redis/connection.ts";
import { RedisEngine } from "./redis/redis-engine.ts";
import { SqliteEngine } from "./sqlite/sqlite-engine.ts";

export type EngineConfig =
  | { readonly kind: "memory" }
  | { readonly kind: "sqlite"; readonly dataDir: string; readonly synchronous?: "normal" | "full"; readonly readOnly?: boolean }
  | {
      readonly kind: "redis";
      readonly target: RedisTarget;
      readonly prefix?: string;
      readonly retentionSeconds?: number;
      readonly waitReplicas?: number;
      readonly waitTimeoutMs?: number;
    };

/** Opens the adapter the configuration names. */
export function openEngine(config: EngineConfig, logger?: Logger): Engine {
  switch (config.kind) {
    case "memory":
      return new MemoryEngine();
    case "sqlite":
      return new SqliteEngine(config);
    case "redis":
      return new RedisEngine({ ...config, ...(logger ? { logger } : {}) });
  }
}
