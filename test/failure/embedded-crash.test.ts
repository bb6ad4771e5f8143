import { afterEach, describe, expect, it } from "vitest";
import { checkFollow, segmentsAreContiguous } from "../../src/chaos/follow-check.ts";
import { findAnswerInFlight, inFlightInLog } from "../../src/chaos/in-flight.ts";
import { startLifeline, type LifelineProcess } from "../../src/chaos/lifeline-process.ts";
import { createClient, type LifelineClient } from "../../src/client/index.ts";
import type { Entry } from "../../src/core/entries.ts";
import { expectExactAnswer } from "../support/invariants.ts";
import { entriesOf, readEvents } from "../support/sse-client.ts";
import { tempDir } from "../support/temp-dir.ts";
import { simRequest, simText } from "../support/sim-answer.ts";

const request = (content: string, max_tokens = 100) => simRequest(content, { max_tokens, seed: 7 });
const reconnect = { initialMs: 100, maxMs: 1000 };

/** The workers named by the `started` entries of a log, with their fences, in order. */
const startedBy = (entries: readonly Entry[]): [string, number][] =>
  entries.filter((e): e is Extract<Entry, { type: "started" }> => e.type === "started").map((e) => [e.worker, e.attempt]);

/**
 * A follow through the SDK on a process about to stop: it records what it applied, and `stop()`
 * closes it and says where it stood (the cursor and text of its last entry), to resume elsewhere.
 */
function followUntilStopped(client: LifelineClient, id: string, onEntry: (entries: readonly Entry[]) => void = () => undefined) {
  const entries: Entry[] = [];
  let last: { cursor: string | undefined; text: string } = { cursor: undefined, text: "" };
  const follow = client.follow(id, {
    onEvent: (event) => {
      if (event.type !== "entry") return;
      entries.push(event.entry);
      last = { cursor: event.cursor, text: event.text };
      onEntry(entries);
    },
  });
  return {
    stop: () => {
      follow.close();
      return { ...last, applied: entries.map((e) => e.offset), entries: [...entries] };
    },
  };
}

describe("the embedded mode survives killed processes", () => {
  const processes: LifelineProcess[] = [];
  const clients: LifelineClient[] = [];
  const dirs: { remove(): void }[] = [];
  const start = async (command: "start" | "worker", dataDir: string, env: Record<string, string> = {}): Promise<LifelineProcess> => {
    const proc = await startLifeline(command, { LIFELINE_DATA_DIR: dataDir, LIFELINE_SIM_TOKENS_PER_SECOND: "50", ...env });
    processes.push(proc);
    return proc;
  };
  const client = (baseUrl: string): LifelineClient => {
    const made = createClient({ baseUrl, reconnect });
    clients.push(made);
    return made;
  };
  const dir = (): string => {
    const d = tempDir();
    dirs.push(d);
    return d.path;
  };
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    await Promise.all(processes.splice(0).map((p) => p.kill()));
    for (const d of dirs.splice(0)) d.remove();
  });

  it("a process SIGKILLed mid-answer and started again finishes the answer byte for byte", async () => {
    const data = dir();
    const first = await start("start", data, { LIFELINE_LEASE_MS: "1000", LIFELINE_WORKER_NAME: "first" });
    const { id } = await client(first.url).start(request("survive a crash"));
    // SIGKILL once the client has seen the answer mid-stream on this process's worker.
    let midAnswer = (): void => undefined;
    const seenMidAnswer = new Promise<void>((resolve) => (midAnswer = resolve));
    const before = followUntilStopped(client(first.url), id, (entries) => {
      if (inFlightInLog(id, entries)?.worker === "first") midAnswer();
    });
    await seenMidAnswer;
    await first.kill();
    const stood = before.stop();
    expect(stood.entries.some((e) => e.type === "completed")).toBe(false);

    // The SDK resumes from its cursor on the process started again on the same data.
    const second = await start("start", data, { LIFELINE_LEASE_MS: "1000", LIFELINE_WORKER_NAME: "second" });
    const afterOffset = stood.applied[stood.applied.length - 1] ?? 0;
    const after = await checkFollow(client(second.url).follow(id, { cursor: stood.cursor, text: stood.text }), { afterOffset });
    expect(after).toMatchObject({ text: simText(request("survive a crash")), status: "completed", problem: undefined });
    expect(segmentsAreContiguous([...stood.applied, ...after.applied])).toBe(true);

    const entries = entriesOf((await readEvents(second.url, id)).messages);
    expectExactAnswer(entries, simText(request("survive a crash")));
    expect(startedBy(entries)).toEqual([
      ["first", 1],
      ["second", 2],
    ]);

    // The same request, uninterrupted, on the same server: the same text byte for byte.
    const again = await client(second.url).start(request("survive a crash"));
    const uninterrupted = await checkFollow(client(second.url).follow(again.id));
    expect(uninterrupted.text).toBe(simText(request("survive a crash")));
    expectExactAnswer(entriesOf((await readEvents(second.url, again.id)).messages), simText(request("survive a crash")));
    const view = (await (await fetch(`${second.url}/v1/generations/${id}`)).json()) as { text: string; attempts: number };
    expect(view).toMatchObject({ attempts: 2, text: simText(request("survive a crash")) });
  });

  it("two processes on one data directory never both run one answer", async () => {
    const data = dir();
    const a = await start("start", data, { LIFELINE_LEASE_MS: "1500", LIFELINE_WORKER_NAME: "A" });
    const b = await start("start", data, { LIFELINE_LEASE_MS: "1500", LIFELINE_WORKER_NAME: "B" });
    const [viaA, viaB] = [client(a.url), client(b.url)];
    const answers: { id: string; content: string }[] = [];
    for (let i = 0; i < 16; i++) {
      const content = `question ${i}`;
      answers.push({ id: (await (i % 2 === 0 ? viaA : viaB).start(request(content, 60))).id, content });
    }
    // Each answer is followed on the gateway that did not create it: waiting works across processes.
    const results = await Promise.all(answers.map(({ id }, i) => checkFollow((i % 2 === 0 ? viaB : viaA).follow(id))));
    const workers = new Set<string>();
    for (const [i, { id, content }] of answers.entries()) {
      expect(results[i]).toMatchObject({ text: simText(request(content, 60)), status: "completed", problem: undefined });
      const entries = entriesOf((await readEvents(a.url, id)).messages);
      expectExactAnswer(entries, simText(request(content, 60)));
      const started = startedBy(entries);
      expect(started).toHaveLength(1);
      workers.add(started[0]![0]);
    }
    expect(workers).toEqual(new Set(["A", "B"]));
  });

  it("SIGTERM hands a running answer to another worker at once, without waiting for the lease", async () => {
    const data = dir();
    const env = { LIFELINE_LEASE_MS: "600000" }; // ten minutes: only a hand-back can finish in time
    const a = await start("start", data, { ...env, LIFELINE_WORKER_NAME: "A" });
    // Long enough that it is still running when the second worker has started, even on a busy machine.
    const { id } = await client(a.url).start(request("hand me over", 400));
    const before = followUntilStopped(client(a.url), id);
    const expectedChars = simText(request("hand me over", 400)).length;
    const held = await findAnswerInFlight({ gateway: a.url, answers: () => [{ id, expectedChars }], worker: (name) => name === "A" });
    expect(held).toMatchObject({ id, worker: "A" });
    const b = await start("worker", data, { ...env, LIFELINE_WORKER_NAME: "B" });
    expect(await a.terminate()).toBe(0); // its open streams ended with it
    const stood = before.stop();
    const c = await start("start", data, { ...env, LIFELINE_WORKER_NAME: "C" });
    const afterOffset = stood.applied[stood.applied.length - 1] ?? 0;
    const after = await checkFollow(client(c.url).follow(id, { cursor: stood.cursor, text: stood.text }), { afterOffset });
    expect(after).toMatchObject({ text: simText(request("hand me over", 400)), status: "completed", problem: undefined });
    expect(segmentsAreContiguous([...stood.applied, ...after.applied])).toBe(true);

    const entries = entriesOf((await readEvents(c.url, id)).messages);
    expectExactAnswer(entries, simText(request("hand me over", 400)));
    const workers = startedBy(entries).map(([worker]) => worker);
    expect(workers[0]).toBe("A");
    expect(workers.length).toBe(2);
    expect(["B", "C"]).toContain(workers[1]);
    void b;
  });
});
