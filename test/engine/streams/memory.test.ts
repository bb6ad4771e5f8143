import { MemoryStreamStore } from "../../../src/engine/streams/memory.ts";
import { streamStoreConformance } from "./conformance.ts";

streamStoreConformance("memory", async () => {
  const store = new MemoryStreamStore();
  return { store, peer: store, close: () => store.close() };
});
