import { afterEach, describe, expect, it } from "vitest";
import type { Entry } from "../../src/core/entries.ts";
import { useLifelineProcesses } from "../support/lifeline-processes.ts";
import { expectExactAnswer } from "../support/invariants.ts";
import { entriesOf, readEvents, startGeneration } from "../support/sse-client.ts";
import { tempDir } from "../support/temp-dir.ts";
import { simRequest, simText } from "../support/sim-answer.ts";

const request = simRequest("a writer that wakes too late", { max_tokens: 80, seed: 11 });
const uninterrupted = simText(request);

interface GenerationView {
  status: string;
  lastOffset: number;
  attempts: number;
}

async function view(url: string, id: string): Promise<GenerationView> {
  return (await (await fetch(`${url}/v1/generations/${id}`)).json()) as GenerationView;
}

describe("one gateway and several workers on one sqlite data directory", () => {
  const start = useLifelineProcesses();
  const dirs: { remove(): void }[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) d.remove();
  });

  it("a worker paused past its lease is replaced, and when it wakes every append it tries is refused", async () => {
    const data = tempDir();
    dirs.push(data);
    const env = { LIFELINE_DATA_DIR: data.path, LIFELINE_LEASE_MS: "1500", LIFELINE_SIM_TOKENS_PER_SECOND: "20" };
    const gateway = await start("gateway", env);
    const zombie = await start("worker", { ...env, LIFELINE_WORKER_NAME: "zombie", LIFELINE_LOG_LEVEL: "info" });
    const id = await startGeneration(gateway.url, request);

    // Mid-answer: the first worker has written its `started` entry and a few deltas.
    await expect.poll(async () => (await view(gateway.url, id)).lastOffset, { timeout: 30_000, interval: 50 }).toBeGreaterThanOrEqual(5);
    zombie.child.kill("SIGSTOP");
    const pausedAt = (await view(gateway.url, id)).lastOffset;

    // A second worker takes the answer over once the paused one's lease has run out, and goes on.
    await start("worker", { ...env, LIFELINE_WORKER_NAME: "rescuer" });
    await expect.poll(async () => (await view(gateway.url, id)).attempts, { timeout: 30_000, interval: 50 }).toBe(2);
    await expect
      .poll(async () => (await view(gateway.url, id)).lastOffset, { timeout: 30_000, interval: 50 })
      .toBeGreaterThan(pausedAt + 3);

    // The paused worker wakes with tokens to write and a lease it believes it holds.
    zombie.child.kill("SIGCONT");
    await expect.poll(() => zombie.output(), { timeout: 30_000, interval: 50 }).toMatch(/"reason":"leaseLost"/);

    const entries = entriesOf((await readEvents(gateway.url, id)).messages);
    expectExactAnswer(entries, uninterrupted);
    const started = entries.filter((e): e is Extract<Entry, { type: "started" }> => e.type === "started");
    expect(started.map((e) => [e.worker, e.attempt])).toEqual([
      ["zombie", 1],
      ["rescuer", 2],
    ]);
    // Nothing of the first attempt stands after the second one began.
    const takeoverAt = started[1]!.offset;
    const lateWrites = entries.filter((e: Entry) => e.offset > takeoverAt && e.attempt === 1);
    expect(lateWrites).toEqual([]);
    expect(entries.filter((e) => e.offset < takeoverAt && e.type === "delta").length).toBeGreaterThan(0);

    // The woken worker lost only that answer: it is still a worker, and stops cleanly.
    expect(zombie.child.exitCode).toBeNull();
    expect(await zombie.terminate()).toBe(0);
  });
});
