import { MemoryEngine } from "./memory/memory-engine.ts";
import type { Engine } from "./port.ts";
import { SqliteEngine } from "./sqlite/sqlite-engine.ts";

export type EngineConfig =
  | { readonly kind: "memory" }
  | { readonly kind: "sqlite"; readonly dataDir: string; readonly synchronous?: "normal" | "full" };

/** Opens the adapter the configuration names. */
export function openEngine(config: EngineConfig): Engine {
  switch (config.kind) {
    case "memory":
      return new MemoryEngine();
    case "sqlite":
      return new SqliteEngine(config);
  }
}
