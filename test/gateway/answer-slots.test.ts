import { describe, expect, it } from "vitest";
import { MemoryEngine } from "../../src/engine/memory/memory-engine.ts";
import { MemoryKeyStore } from "../../src/engine/keys/memory.ts";
import type { KeyStore } from "../../src/engine/keys/port.ts";
import { AnswerSlots } from "../../src/gateway/auth/answer-slots.ts";
import type { Caller } from "../../src/gateway/auth/caller.ts";
import { overriding } from "../support/overriding-engine.ts";

const caller: Caller = { kind: "key", holder: { keyId: "k1", tenant: "acme", scopes: ["generations:create"] } };
const request = { model: "sim", messages: [{ role: "user" as const, content: "slots" }] };

describe("concurrent answers per key", () => {
  it("a start swaps its reservation for its generation in one step: a start beside it never finds both counted", async () => {
    const engine = new MemoryEngine();
    const memory = new MemoryKeyStore();
    // A store whose releases stall: a start that took its generation's slot and then let go of its
    // reservation would hold two slots all that while.
    let stalled = 0;
    const store = overriding<KeyStore>(memory, {
      releaseSlots: (keyId, released) => {
        if (released.length === 0) return memory.releaseSlots(keyId, released);
        stalled += 1;
        return new Promise<void>(() => undefined);
      },
    });
    const slots = new AnswerSlots(store, engine, 2);
    try {
      const first = slots.admit(caller, () => engine.create(request));
      await new Promise((resolve) => setTimeout(resolve, 50));
      const second = await slots.admit(caller, () => engine.create(request));
      expect(second.id).toMatch(/./);
      await first;
      expect(stalled).toBe(0);
      expect(await memory.slots("k1", Date.now())).toHaveLength(2);
      // At the limit now: a third is refused.
      await expect(slots.admit(caller, () => engine.create(request))).rejects.toMatchObject({ code: "too_many_answers" });
    } finally {
      await engine.close();
    }
  });
});
