import type { Logger } from "../observability/logger.ts";
import { MemoryEngine } from "./memory/memory-engine.ts";
import type { Engine } from "./port.ts";
import type { RedisTarget } from "./redis/connection.ts";
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

/**
 * Opens the adapter the configuration names. The Redis adapter, and ioredis under it, is loaded only
 * for a Redis engine: a process on sqlite or memory starts without it (decision 070).
 */
export async function openEngine(config: EngineConfig, logger?: Logger): Promise<Engine> {
  switch (config.kind) {
    case "memory":
      return new MemoryEngine();
    case "sqlite":
      return new SqliteEngine(config);
    case "redis": {
      const { RedisEngine } = await import("./redis/redis-engine.ts");
      return new RedisEngine({ ...config, ...(logger ? { logger } : {}) });
    }
  }
}
