import { describe, expect, it } from "vitest";
import { SimProvider } from "../src/llm/sim/sim-provider.ts";
import { simContinuation, simTokens } from "../src/llm/sim/sim-text.ts";

const request = { model: "sim", messages: [{ role: "user" as const, content: "Tell me about logs" }], seed: 3, max_tokens: 40 };

describe("the sim model", () => {
  it("gives the same text for the same messages and seed, another for another seed", () => {
    expect(simTokens(request).join("")).toBe(simTokens({ ...request }).join(""));
    expect(simTokens(request)).toHaveLength(40);
    expect(simTokens({ ...request, seed: 4 }).join("")).not.toBe(simTokens(request).join(""));
  });

  it("continues any prefix of its own answer exactly, even mid-token", () => {
    const full = simTokens(request).join("");
    for (let cut = 0; cut <= full.length; cut++) {
      const prefix = full.slice(0, cut);
      expect(prefix + simContinuation(request, prefix).join("")).toBe(full);
    }
  });

  it("continues a foreign prefix deterministically", () => {
    const a = simContinuation(request, "Something else entirely");
    expect(a.join("")).toBe(simContinuation(request, "Something else entirely").join(""));
    expect(a.length).toBeGreaterThan(0);
  });

  it("streams tokens at its pace and stops when aborted", async () => {
    const sim = new SimProvider({ tokensPerSecond: 1000 });
    const ctl = new AbortController();
    const seen: string[] = [];
    await expect(
      (async () => {
        for await (const event of sim.stream({ request, prefix: "", signal: ctl.signal })) {
          if (event.type === "token") seen.push(event.text);
          if (seen.length === 5) ctl.abort();
        }
      })(),
    ).rejects.toThrow(/abort/i);
    expect(seen).toEqual(simTokens(request).slice(0, 5));
  });

  it("finishes with usage after the last token", async () => {
    const sim = new SimProvider({ tokensPerSecond: 5000 });
    let text = "";
    let finish: unknown;
    for await (const event of sim.stream({ request, prefix: "", signal: new AbortController().signal })) {
      if (event.type === "token") text += event.text;
      else finish = event;
    }
    expect(text).toBe(simTokens(request).join(""));
    expect(finish).toEqual({ type: "finish", finishReason: "stop", usage: { promptTokens: 4, completionTokens: 40 } });
  });
});
