import { beforeEach, describe, expect, it } from "vitest";
import type { Entry } from "../../src/core/entries.ts";
import { simTokens } from "../../src/llm/sim/sim-text.ts";
import { followAnswer, type FollowResult } from "../support/follower.ts";
import { expectExactAnswer } from "../support/invariants.ts";
import type { LifelineProcess } from "../../src/chaos/lifeline-process.ts";
import { requireRedis } from "../support/redis-harness.ts";
import { useSentinelDeployment } from "../support/sentinel-deployment.ts";
import { startGeneration } from "../support/sse-client.ts";

beforeEach((ctx) => requireRedis(ctx));

const ANSWERS = 50;
const MAX_TOKENS = 80;
const request = (i: number) => ({
  model: "sim",
  messages: [{ role: "user" as const, content: `question number ${i}` }],
  max_tokens: MAX_TOKENS,
  seed: i,
});
const simText = (i: number): string => simTokens(request(i)).join("");
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function readLog(gateway: string, id: string): Promise<Entry[]> {
  const res = await fetch(`${gateway}/v1/generations/${id}/events`);
  const text = await res.text();
  return text
    .split("\n")
    .filter((line) => line.startsWith("data: "))
    .map((line) => JSON.parse(line.slice(6)) as Entry);
}

describe("distributed mode: 2 gateways, 3 workers, Redis with Sentinel", () => {
  const deployment = useSentinelDeployment();

  it("a worker SIGKILLed, the primary SIGKILLed and clients switching gateways mid-answer: every text is exact", async () => {
    const g = deployment.group();
    const env = deployment.env("chaos", { LIFELINE_LEASE_MS: "8000", LIFELINE_SIM_TOKENS_PER_SECOND: "16" });
    const started = await Promise.all([
      deployment.start("gateway", env),
      deployment.start("gateway", env),
      ...[1, 2, 3].map((n) => deployment.start("worker", { ...env, LIFELINE_WORKER_NAME: `w${n}` })),
    ]);
    const [ga, gb, w1] = started as [LifelineProcess, LifelineProcess, LifelineProcess];
    const gateways = [ga.url, gb.url];

    const ids: string[] = [];
    for (let i = 0; i < ANSWERS; i++) ids.push(await startGeneration(gateways[i % 2]!, request(i), { "idempotency-key": `chaos-${i}` }));
    const following: Promise<FollowResult>[] = ids.map((id, i) =>
      followAnswer(id, { gateways: i % 2 === 0 ? gateways : [...gateways].reverse(), switchAfter: 5 + (i % 20), deadlineMs: 90_000 }),
    );

    await sleep(1500);
    await w1.kill(); // a worker dies mid-answer
    await sleep(1000);
    await g.killPrimary(); // Redis dies mid-answer; Sentinel promotes the replica
    await g.waitForFailover(30_000);

    const results = await Promise.all(
      following.map((f, i) =>
        f.catch(async (error: unknown) => {
          const view = await (await fetch(`${gateways[0]}/v1/generations/${ids[i]}`)).text();
          // On failure, show where the answer stood and what the processes said about it.
          console.log("stuck answer", ids[i], view.slice(0, 400));
          for (const p of started)
            console.log(
              "process output:",
              p
                .output()
                .split("\n")
                .filter((l) => l.includes(ids[i]!) || /"level":50/.test(l))
                .slice(-8)
                .join("\n"),
            );
          throw error;
        }),
      ),
    );
    for (const [i, result] of results.entries()) {
      expect(result.text, `answer ${i}`).toBe(simText(i));
      // What the application applied: 1, 2, 3 … with no gap and no repeat (a reset would restart at 1).
      expect(result.resets, `resets of answer ${i}`).toBe(0);
      expect(result.applied).toEqual(result.applied.map((_, k) => k + 1));
      expect(result.gatewaysUsed.size).toBe(2);
    }
    for (const [i, id] of ids.entries()) expectExactAnswer(await readLog(gateways[i % 2]!, id), simText(i));
    const takenOver = (await Promise.all(ids.map((id) => readLog(ga.url, id)))).filter(
      (log) => log.filter((e) => e.type === "started").length > 1,
    );
    expect(takenOver.length).toBeGreaterThan(0); // the killed worker's answers were continued by others
  }, 180_000);
});
