import { describe, expect, it } from "vitest";
import { MemoryEngine } from "../../src/engine/memory/memory-engine.ts";
import { engineConformance } from "./conformance.ts";

engineConformance("memory", async () => {
  const engine = new MemoryEngine();
  return { engine, peer: engine, close: () => engine.close() };
});

describe("the memory engine's change feed, trimmed", () => {
  it("says a reader behind what it keeps has a gap, and one within it has none", async () => {
    const engine = new MemoryEngine({ feedLimit: 2 });
    const request = { model: "sim", messages: [{ role: "user" as const, content: "x" }] };
    await engine.create(request);
    const first = (await engine.changes(undefined, 10)).changes[0]!;
    await engine.create(request);
    await engine.create(request);
    expect((await engine.changes(undefined, 10)).gap).toBe(true);
    expect((await engine.changes(first.position, 10)).gap).toBe(false);
    expect((await engine.changes(first.position, 10)).changes).toHaveLength(2);
    await engine.close();
  });
});
