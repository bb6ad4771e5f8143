import { fileURLToPath } from "node:url";
import { expect } from "vitest";
import type { LifelineProcess } from "../../../src/chaos/lifeline-process.ts";
import type { Entry } from "../../../src/core/entries.ts";
import { expectExactAnswer } from "../../support/invariants.ts";
import type { StartLifeline } from "../../support/lifeline-processes.ts";
import { simRequest, simText } from "../../support/sim-answer.ts";
import { readAnswer, startGeneration } from "../../support/sse-client.ts";

export const BIN = fileURLToPath(new URL("../../../bin/lifeline", import.meta.url));
export const request = simRequest("wake me when there is work", { max_tokens: 24, seed: 3 });
export const expected = simText(request);

/** Resolves once `pattern` has appeared `times` times in what the process wrote. */
export async function outputShows(proc: LifelineProcess, pattern: RegExp, times = 1): Promise<void> {
  const global = new RegExp(pattern.source, "g");
  await expect.poll(() => proc.output().match(global)?.length ?? 0, { timeout: 30_000, interval: 50 }).toBeGreaterThanOrEqual(times);
}

/** An idle spell of several claim and watch periods (the sqlite watch looks every 25 ms). */
export const idle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 1500));

export const running = (proc: LifelineProcess): boolean => proc.child.exitCode === null && proc.child.signalCode === null;

/**
 * The shape a user deploys: a worker started first, idle, then a gateway started separately on
 * the same engine; the worker takes the answer, finishes it exactly and keeps running.
 */
export async function idleWorkerThenWork(env: Record<string, string>, start: StartLifeline): Promise<void> {
  const worker = await start("worker", { ...env, LIFELINE_WORKER_NAME: "idle-worker", LIFELINE_LOG_LEVEL: "info" });
  await outputShows(worker, /"msg":"waiting for work"/);
  // The gateway starts during the worker's idle spell: nothing reaches the worker before the answer is asked for.
  const [gateway] = await Promise.all([start("gateway", env), idle()]);
  expect(running(worker)).toBe(true);

  const id = await startGeneration(gateway.url, request);
  const entries = await readAnswer(gateway.url, id);
  expectExactAnswer(entries, expected);
  const started = entries.filter((e): e is Extract<Entry, { type: "started" }> => e.type === "started");
  expect(started.map((e) => e.worker)).toEqual(["idle-worker"]);

  // Still there after the answer, idle again, and said so once for this spell, not per poll.
  await outputShows(worker, /"msg":"waiting for work"/, 2);
  await idle();
  expect(running(worker)).toBe(true);
  expect(worker.output().match(/"msg":"waiting for work"/g)).toHaveLength(2);
  expect(await worker.terminate()).toBe(0);
  expect(await gateway.terminate()).toBe(0);
}
