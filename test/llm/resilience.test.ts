import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { Entry } from "../../src/core/entries.ts";
import { loadConfig } from "../../src/cli/config.ts";
import { startNode, type LifelineNode } from "../../src/cli/node.ts";
import { startSimLlm, type SimLlm, type SimLlmOptions } from "../../src/sim-llm/server.ts";
import { simTokens } from "../../src/llm/sim/sim-text.ts";
import { expectExactAnswer } from "../support/invariants.ts";
import { entriesOf, postJson, readEvents, startGeneration } from "../support/sse-client.ts";
import { tempDir } from "../support/temp-dir.ts";

const ask = (content: string, max_tokens = 30) => ({ model: "main", messages: [{ role: "user" as const, content }], max_tokens, seed: 5 });
const simText = (content: string, max_tokens = 30): string =>
  simTokens({ messages: [{ role: "user", content }], max_tokens, seed: 5 }).join("");
const byType = <T extends Entry["type"]>(entries: readonly Entry[], type: T) =>
  entries.filter((e): e is Extract<Entry, { type: T }> => e.type === type);

describe("models that fail, against sim-llm", () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function simLlm(options: SimLlmOptions): Promise<SimLlm> {
    const server = await startSimLlm({ tokensPerSecond: 200, ...options });
    cleanups.push(() => server.close());
    return server;
  }

  /** A Lifeline node whose model `main` is served by `primary` (and `backup` when given). */
  async function lifeline(
    primary: SimLlm,
    extra: { backup?: SimLlm; model?: Record<string, unknown>; config?: Record<string, unknown> } = {},
  ): Promise<LifelineNode & { url: string }> {
    const dir = tempDir();
    cleanups.push(() => dir.remove());
    const file = join(dir.path, "models.json");
    const providers: Record<string, unknown> = { primary: { type: "openai-compatible", baseUrl: `${primary.url}/v1` } };
    const models: Record<string, unknown> = {
      main: { provider: "primary", model: "sim", ...(extra.backup ? { fallbacks: ["backup"] } : {}), ...extra.model },
    };
    if (extra.backup) {
      providers.backup = { type: "openai-compatible", baseUrl: `${extra.backup.url}/v1` };
      models.backup = { provider: "backup", model: "sim" };
    }
    writeFileSync(file, JSON.stringify({ providers, models, retry: { baseDelayMs: 50, maxDelayMs: 200 }, ...extra.config }));
    const config = loadConfig({ LIFELINE_ENGINE: "memory", LIFELINE_PORT: "0", LIFELINE_LOG_LEVEL: "silent", LIFELINE_CONFIG: file }, {});
    const node = (await startNode(config, { gateway: true, worker: true })) as LifelineNode & { url: string };
    cleanups.push(() => node.stop());
    return node;
  }

  async function answer(url: string, body: unknown): Promise<Entry[]> {
    const id = await startGeneration(url, body);
    return entriesOf((await readEvents(url, id)).messages);
  }

  it("a 500 before streaming is retried and the answer completes exactly", async () => {
    const primary = await simLlm({ fault: "error", faultStatus: 500, faultCount: 1 });
    const node = await lifeline(primary);
    const entries = await answer(node.url, ask("five hundred"));
    expectExactAnswer(entries, simText("five hundred"));
    expect(byType(entries, "retrying").map((e) => e.error.code)).toEqual(["model_unavailable"]);
    expect(byType(entries, "started")).toHaveLength(2);
  });

  it("a 503 is retried too", async () => {
    const primary = await simLlm({ fault: "error", faultStatus: 503, faultCount: 2 });
    const node = await lifeline(primary);
    const entries = await answer(node.url, ask("five oh three"));
    expectExactAnswer(entries, simText("five oh three"));
    expect(byType(entries, "retrying").map((e) => e.error.code)).toEqual(["model_unavailable", "model_unavailable"]);
  });

  it("a first token slower than the first-token timeout is given up on and asked again", async () => {
    const primary = await simLlm({ fault: "slow-first-token", firstTokenDelayMs: 3000, faultCount: 1 });
    const node = await lifeline(primary, { config: { timeouts: { firstTokenMs: 400 } } });
    const entries = await answer(node.url, ask("slow start"));
    expectExactAnswer(entries, simText("slow start"));
    expect(byType(entries, "retrying").map((e) => e.error.code)).toEqual(["model_timeout"]);
    expect(byType(entries, "retrying")[0]?.error.message).toContain("first-token");
  });

  it("a stalled stream is cut by the idle timeout and the answer continues byte for byte", async () => {
    const primary = await simLlm({ fault: "stall", faultAfterTokens: 6, faultCount: 1 });
    const node = await lifeline(primary, { config: { timeouts: { idleMs: 400 } } });
    const entries = await answer(node.url, ask("stall"));
    expectExactAnswer(entries, simText("stall"));
    expect(byType(entries, "retrying").map((e) => e.error.code)).toEqual(["model_timeout"]);
    expect(primary.stats().abortedByClient).toBe(1); // the stalled upstream request was closed
  });

  it("a stream cut mid-answer is continued from its prefix, byte for byte", async () => {
    const primary = await simLlm({ fault: "cut", faultAfterTokens: 7, faultCount: 1 });
    const node = await lifeline(primary);
    const entries = await answer(node.url, ask("cut"));
    expectExactAnswer(entries, simText("cut"));
    expect(byType(entries, "retrying")).toHaveLength(1);
    expect(byType(entries, "rewind")).toHaveLength(0);
  });

  it("with restart, a cut answer is rewound and answered afresh", async () => {
    const primary = await simLlm({ fault: "cut", faultAfterTokens: 7, faultCount: 1 });
    const node = await lifeline(primary, { model: { continuation: "restart" } });
    const entries = await answer(node.url, ask("restart"));
    expectExactAnswer(entries, simText("restart"));
    expect(byType(entries, "rewind").map((e) => e.toOffset)).toEqual([1]);
  });

  it("a 429's Retry-After is honoured", async () => {
    const primary = await simLlm({ fault: "rate-limit", retryAfterSeconds: 1, faultCount: 1 });
    const node = await lifeline(primary);
    const entries = await answer(node.url, ask("slow down"));
    expectExactAnswer(entries, simText("slow down"));
    const [retry] = byType(entries, "retrying");
    expect(retry?.error.code).toBe("model_rate_limited");
    expect(retry?.delayMs).toBeGreaterThanOrEqual(1000);
    const started = byType(entries, "started");
    // Timers run on a monotonic clock and `at` is wall-clock milliseconds: allow their rounding.
    expect(Date.parse(started[1]!.at) - Date.parse(retry!.at)).toBeGreaterThanOrEqual(990);
  });

  it("a provider that is down trips its breaker and the fallback serves", async () => {
    const primary = await simLlm({ fault: "error", faultStatus: 503 });
    const backup = await simLlm({});
    const node = await lifeline(primary, {
      backup,
      config: { retry: { maxAttempts: 1 }, breaker: { failureThreshold: 2, cooldownMs: 60_000 } },
    });
    for (const n of [1, 2]) {
      const entries = await answer(node.url, ask(`down ${n}`));
      expectExactAnswer(entries, simText(`down ${n}`));
      expect(byType(entries, "started").map((e) => e.model)).toEqual(["main", "backup"]);
    }
    const before = primary.stats().requests;
    const entries = await answer(node.url, ask("down 3"));
    expectExactAnswer(entries, simText("down 3"));
    expect(byType(entries, "started").map((e) => e.model)).toEqual(["backup"]); // the open breaker skips the primary
    expect(primary.stats().requests).toBe(before);
  });

  it("with every breaker open, an answer waits for the trial call instead of failing, and completes exactly", async () => {
    // Two 503s open the breaker (the first answer fails); the provider is well again after them.
    const primary = await simLlm({ fault: "error", faultStatus: 503, faultCount: 2 });
    const node = await lifeline(primary, {
      config: { retry: { maxAttempts: 2, baseDelayMs: 10, maxDelayMs: 20 }, breaker: { failureThreshold: 2, cooldownMs: 1000 } },
    });
    const failed = await answer(node.url, ask("opens the breaker"));
    expect(failed.at(-1)).toMatchObject({ type: "failed", error: { code: "model_unavailable" } });
    const entries = await answer(node.url, ask("waits for it"));
    expectExactAnswer(entries, simText("waits for it"));
    const waits = byType(entries, "retrying");
    expect(waits).toHaveLength(1); // one wait, for the rest of the cooldown
    const [wait] = waits;
    expect(wait).toMatchObject({ error: { code: "model_unavailable", message: expect.stringContaining("circuit open") } });
    expect(wait!.delayMs).toBeGreaterThan(0);
    expect(wait!.delayMs).toBeLessThanOrEqual(1000); // the rest of the cooldown
    expect(byType(entries, "started")).toHaveLength(1); // no call while the breaker was open
    expect(primary.stats().requests).toBe(3);
  });

  it("with every breaker open longer than maxRetryAfterMs, an answer fails at once without a call", async () => {
    const primary = await simLlm({ fault: "error", faultStatus: 503 });
    const node = await lifeline(primary, {
      config: {
        retry: { maxAttempts: 2, baseDelayMs: 10, maxDelayMs: 20, maxRetryAfterMs: 200 },
        breaker: { failureThreshold: 2, cooldownMs: 60_000 },
      },
    });
    await answer(node.url, ask("opens the breaker"));
    const before = primary.stats().requests;
    const entries = await answer(node.url, ask("refused"));
    expect(entries.at(-1)).toMatchObject({
      type: "failed",
      error: { code: "model_unavailable", message: expect.stringContaining("circuit open") },
    });
    expect(byType(entries, "started")).toHaveLength(0);
    expect(byType(entries, "retrying")).toHaveLength(0); // no wait it could not finish, no tries refused one after another
    expect(primary.stats().requests).toBe(before);
  });

  it("a failure that cannot be recovered ends the log with failed and a clear code", async () => {
    const primary = await simLlm({ fault: "error", faultStatus: 400 });
    const node = await lifeline(primary);
    const entries = await answer(node.url, ask("refused"));
    const last = entries[entries.length - 1];
    expect(last).toMatchObject({ type: "failed", error: { code: "model_rejected" } });
    expect(byType(entries, "started")).toHaveLength(1); // a 400 is not retried
  });

  it("a cancel stops the upstream stream", async () => {
    const primary = await simLlm({ tokensPerSecond: 20 });
    const node = await lifeline(primary);
    const id = await startGeneration(node.url, ask("cancel me", 2000));
    await readEvents(node.url, id, { cutWhen: (m) => m.event === "delta" });
    expect(primary.stats().openStreams).toBe(1);
    expect((await postJson(node.url, `/v1/generations/${id}/cancel`, {})).status).toBe(202);
    const deadline = Date.now() + 1000;
    while (primary.stats().abortedByClient === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(primary.stats().abortedByClient).toBe(1);
    expect(primary.stats().openStreams).toBe(0);
  });
});
