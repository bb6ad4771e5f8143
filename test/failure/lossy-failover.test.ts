import { Redis } from "ioredis";
import { beforeEach, describe, expect, it } from "vitest";
import { simTokens } from "../../src/llm/sim/sim-text.ts";
import { followAnswer, segmentsAreContiguous } from "../support/follower.ts";
import { expectExactAnswer } from "../support/invariants.ts";
import { requireRedis } from "../support/redis-harness.ts";
import { useSentinelDeployment } from "../support/sentinel-deployment.ts";
import { entriesOf, readEvents, startGeneration } from "../support/sse-client.ts";

beforeEach((ctx) => requireRedis(ctx));

const ANSWERS = 20;
const request = (i: number) => ({ model: "sim", messages: [{ role: "user" as const, content: `lossy ${i}` }], max_tokens: 80, seed: i });
const simText = (i: number): string => simTokens(request(i)).join("");
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe("a failover that drops acknowledged appends", () => {
  const deployment = useSentinelDeployment();

  it("is repaired by the writers: no token lost, every text exact", async () => {
    const g = deployment.group();
    const env = deployment.env("lossy", { LIFELINE_LEASE_MS: "5000", LIFELINE_SIM_TOKENS_PER_SECOND: "16" });
    const started = await Promise.all([
      deployment.start("gateway", env),
      deployment.start("worker", { ...env, LIFELINE_WORKER_NAME: "w1" }),
      deployment.start("worker", { ...env, LIFELINE_WORKER_NAME: "w2" }),
    ]);
    const gateway = started[0].url;
    const ids: string[] = [];
    for (let i = 0; i < ANSWERS; i++) ids.push(await startGeneration(gateway, request(i)));
    const following = ids.map((id) => followAnswer(id, { gateways: [gateway], deadlineMs: 90_000 }));

    await sleep(1500);
    // The replica stops copying while the primary keeps acknowledging appends; then the primary dies.
    process.kill(g.replica.pid, "SIGSTOP");
    const primary = new Redis({ host: g.primary.host, port: g.primary.port, lazyConnect: true });
    await primary.connect();
    await primary.client("KILL", "TYPE", "replica"); // what was sent but not read is gone with the link
    primary.disconnect();
    await sleep(1500);
    await g.killPrimary();
    process.kill(g.replica.pid, "SIGCONT");
    await g.waitForFailover(30_000);

    const results = await Promise.all(following);
    for (const [i, result] of results.entries()) {
      if (result.text === simText(i)) continue;
      const log = entriesOf((await readEvents(gateway, ids[i]!)).messages);
      // On failure, show what the client applied and what the log holds.
      console.log(
        "text differs",
        i,
        JSON.stringify(result.applied),
        JSON.stringify(log.map((e) => [e.offset, e.type, e.attempt, e.type === "delta" ? e.text : ""])),
      );
      for (const p of started)
        console.log(
          "process output:",
          p
            .output()
            .split("\n")
            .filter((l) => l.includes(ids[i]!))
            .slice(-12)
            .join("\n"),
        );
    }
    results.forEach((result, i) => {
      expect(result.text, `answer ${i}`).toBe(simText(i));
      // A writer that repaired its log in time gives a seamless stream; when a new attempt had
      // already replaced lost entries, the client was told to rebuild (reset) — never misled.
      expect(segmentsAreContiguous(result.applied)).toBe(true);
    });
    for (const [i, id] of ids.entries()) expectExactAnswer(entriesOf((await readEvents(gateway, id)).messages), simText(i));
    // The failover really lost acknowledged entries, and the workers wrote them again.
    const repairs = started.slice(1).map((p) => (p.output().match(/the store lost entries this run wrote/g) ?? []).length);
    expect(repairs.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
  }, 180_000);
});
