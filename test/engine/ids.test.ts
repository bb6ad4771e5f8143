import { describe, expect, it } from "vitest";
import { GENERATION_ID } from "../../src/core/generation-id.ts";
import { newGenerationId } from "../../src/engine/ids.ts";

describe("generation ids", () => {
  it("are well formed, sortable by time, and distinct across many pool refills", () => {
    const now = Date.now();
    const ids = Array.from({ length: 10_000 }, () => newGenerationId(now));
    for (const id of ids.slice(0, 300)) expect(id).toMatch(GENERATION_ID);
    expect(new Set(ids).size).toBe(ids.length);
    // The random part uses every letter of the alphabet about equally (80 bits from whole bytes).
    const letters = new Map<string, number>();
    for (const id of ids) for (const c of id.slice(14)) letters.set(c, (letters.get(c) ?? 0) + 1);
    expect(letters.size).toBe(32);
    for (const count of letters.values()) expect(count).toBeGreaterThan((10_000 * 16) / 32 / 2);
    expect(newGenerationId(now) < newGenerationId(now + 1)).toBe(true);
  });
});
