import { afterEach, describe, expect, it } from "vitest";
import type { Entry } from "../../src/core/entries.ts";
import { simTokens } from "../../src/llm/sim/sim-text.ts";
import { expectExactAnswer } from "../support/invariants.ts";
import { startLifeline, type LifelineProcess } from "../../src/chaos/lifeline-process.ts";
import { entriesOf, readEvents, startGeneration } from "../support/sse-client.ts";
import { tempDir } from "../support/temp-dir.ts";

const request = (content: string, max_tokens = 100) => ({ model: "sim", messages: [{ role: "user", content }], max_tokens, seed: 7 });
const simText = (content: string, max_tokens = 100): string =>
  simTokens({ messages: [{ role: "user", content }], max_tokens, seed: 7 }).join("");

describe("the embedded mode survives killed processes", () => {
  const processes: LifelineProcess[] = [];
  const dirs: { remove(): void }[] = [];
  const start = async (command: "start" | "worker", dataDir: string, env: Record<string, string> = {}): Promise<LifelineProcess> => {
    const proc = await startLifeline(command, { LIFELINE_DATA_DIR: dataDir, LIFELINE_SIM_TOKENS_PER_SECOND: "50", ...env });
    processes.push(proc);
    return proc;
  };
  const dir = (): string => {
    const d = tempDir();
    dirs.push(d);
    return d.path;
  };
  afterEach(async () => {
    await Promise.all(processes.splice(0).map((p) => p.kill()));
    for (const d of dirs.splice(0)) d.remove();
  });

  it("a process SIGKILLed mid-answer and started again finishes the answer byte for byte", async () => {
    const data = dir();
    const first = await start("start", data, { LIFELINE_LEASE_MS: "1000", LIFELINE_WORKER_NAME: "first" });
    const id = await startGeneration(first.url, request("survive a crash"));
    const before = await readEvents(first.url, id, { cutWhen: (m) => m.event === "delta" && Number(m.id) >= 6 });
    await first.kill();
    const seen = entriesOf(before.messages);
    expect(seen.some((e) => e.type === "completed")).toBe(false);

    const second = await start("start", data, { LIFELINE_LEASE_MS: "1000", LIFELINE_WORKER_NAME: "second" });
    const after = await readEvents(second.url, id, { lastEventId: before.messages[before.messages.length - 1]?.id ?? "0" });
    const entries = [...seen, ...entriesOf(after.messages)];
    expectExactAnswer(entries, simText("survive a crash"));
    const started = entries.filter((e): e is Extract<Entry, { type: "started" }> => e.type === "started");
    expect(started.map((e) => [e.worker, e.attempt])).toEqual([
      ["first", 1],
      ["second", 2],
    ]);

    // The same request, uninterrupted, on the same server: the same text byte for byte.
    const again = await startGeneration(second.url, request("survive a crash"));
    const uninterrupted = entriesOf((await readEvents(second.url, again)).messages);
    expectExactAnswer(uninterrupted, simText("survive a crash"));
    const view = (await (await fetch(`${second.url}/v1/generations/${id}`)).json()) as { text: string; attempts: number };
    expect(view).toMatchObject({ attempts: 2, text: simText("survive a crash") });
  });

  it("two processes on one data directory never both run one answer", async () => {
    const data = dir();
    const a = await start("start", data, { LIFELINE_LEASE_MS: "1500", LIFELINE_WORKER_NAME: "A" });
    const b = await start("start", data, { LIFELINE_LEASE_MS: "1500", LIFELINE_WORKER_NAME: "B" });
    const ids: { id: string; content: string }[] = [];
    for (let i = 0; i < 16; i++) {
      const content = `question ${i}`;
      ids.push({ id: await startGeneration(i % 2 === 0 ? a.url : b.url, request(content, 60)), content });
    }
    // Each answer is followed on the gateway that did not create it: waiting works across processes.
    const logs = await Promise.all(ids.map(({ id }, i) => readEvents(i % 2 === 0 ? b.url : a.url, id)));
    const workers = new Set<string>();
    logs.forEach((log, i) => {
      const entries = entriesOf(log.messages);
      expectExactAnswer(entries, simText(ids[i]?.content ?? "", 60));
      const started = entries.filter((e): e is Extract<Entry, { type: "started" }> => e.type === "started");
      expect(started).toHaveLength(1);
      workers.add(started[0]?.worker ?? "");
    });
    expect(workers).toEqual(new Set(["A", "B"]));
  });

  it("SIGTERM hands a running answer to another worker at once, without waiting for the lease", async () => {
    const data = dir();
    const env = { LIFELINE_LEASE_MS: "600000" }; // ten minutes: only a hand-back can finish in time
    const a = await start("start", data, { ...env, LIFELINE_WORKER_NAME: "A" });
    // Long enough that it is still running when the second worker has started, even on a busy machine.
    const id = await startGeneration(a.url, request("hand me over", 400));
    const before = await readEvents(a.url, id, { cutWhen: (m) => m.event === "delta" });
    const started = entriesOf(before.messages).find((e) => e.type === "started");
    expect(started).toMatchObject({ worker: "A" });
    const b = await start("worker", data, { ...env, LIFELINE_WORKER_NAME: "B" });
    expect(await a.terminate()).toBe(0);
    const c = await start("start", data, { ...env, LIFELINE_WORKER_NAME: "C" });
    const after = await readEvents(c.url, id, { lastEventId: before.messages[before.messages.length - 1]?.id ?? "0" });
    const entries = [...entriesOf(before.messages), ...entriesOf(after.messages)];
    expectExactAnswer(entries, simText("hand me over", 400));
    const workers = entries.filter((e): e is Extract<Entry, { type: "started" }> => e.type === "started").map((e) => e.worker);
    expect(workers[0]).toBe("A");
    expect(workers.length).toBe(2);
    expect(["B", "C"]).toContain(workers[1]);
    void b;
  });
});
