import type { EngineConfig } from "../engine/open-engine.ts";
import { parseHostPorts } from "../engine/redis/host-ports.ts";
import type { Config } from "./config.ts";

// Apart from node.ts, which loads the gateway and the worker: `lifeline replay`, `keys` and
// `projections` open an engine (and, for projections, the read models' store) and need neither.

/** The engine the configuration names; `loadConfig` has already checked the combination. */
export function engineConfigOf(config: Config): EngineConfig {
  switch (config.engine) {
    case "memory":
      return { kind: "memory" };
    case "sqlite":
      return { kind: "sqlite", dataDir: config.dataDir, synchronous: config.sqliteSync };
    case "redis": {
      const common = {
        kind: "redis" as const,
        prefix: config.redisPrefix,
        retentionSeconds: config.redisRetentionSeconds,
        waitTimeoutMs: config.redisWaitTimeoutMs,
        ...(config.redisWaitReplicas === undefined ? {} : { waitReplicas: config.redisWaitReplicas }),
      };
      if (config.redisSentinels) {
        return {
          ...common,
          target: { mode: "sentinel", sentinels: parseHostPorts(config.redisSentinels) ?? [], masterName: config.redisMasterName },
        };
      }
      if (config.redisClusterNodes)
        return { ...common, target: { mode: "cluster", nodes: parseHostPorts(config.redisClusterNodes) ?? [] } };
      return { ...common, target: { mode: "standalone", url: config.redisUrl } };
    }
  }
}
