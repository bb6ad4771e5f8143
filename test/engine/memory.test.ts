import { MemoryEngine } from "../../src/engine/memory/memory-engine.ts";
import { engineConformance } from "./conformance.ts";

engineConformance("memory", async () => {
  const engine = new MemoryEngine();
  return { engine, peer: engine, close: () => engine.close() };
});
