import { Redis } from "ioredis";
import { beforeEach, describe, expect, it } from "vitest";
import { faultMidAnswer, hitInFlight } from "../../src/chaos/aimed-fault.ts";
import { checkFollow } from "../../src/chaos/follow-check.ts";
import { findAnswerInFlight, readTimeline } from "../../src/chaos/in-flight.ts";
import { expectFollowsExact, startFailoverFleet } from "../support/failover-fleet.ts";
import { expectExactAnswer } from "../support/invariants.ts";
import { requireRedis } from "../support/redis-harness.ts";
import { useSentinelDeployment } from "../support/sentinel-deployment.ts";
import { until } from "../support/waits.ts";
import { entriesOf, readEvents } from "../support/sse-client.ts";
import { simRequest, simText } from "../support/sim-answer.ts";

beforeEach((ctx) => requireRedis(ctx));

const ANSWERS = 20;
const request = (i: number) => simRequest(`lossy ${i}`, { max_tokens: 80, seed: i });

describe("a failover that drops acknowledged appends", () => {
  const deployment = useSentinelDeployment();

  it("is repaired by the writers: no token lost, every text exact", async () => {
    const g = deployment.group();
    const env = deployment.env("lossy", { LIFELINE_LEASE_MS: "5000", LIFELINE_SIM_TOKENS_PER_SECOND: "16" });
    const { processes: started, gateway, client } = await startFailoverFleet(deployment.start, env);
    try {
      const ids: string[] = [];
      for (let i = 0; i < ANSWERS; i++) ids.push((await client.start(request(i))).id);
      const following = ids.map((id) => checkFollow(client.follow(id)));
      const allEnded = new AbortController();
      void Promise.allSettled(following).then(() => allEnded.abort());
      const answers = ids.map((id, i) => ({ id, expectedChars: simText(request(i)).length }));
      const aim = { gateway, answers: () => answers, signal: allEnded.signal };

      // Once answers stream, the replica stops copying while the primary keeps acknowledging appends.
      expect(await findAnswerInFlight({ ...aim, worker: () => true }), "no answer was ever seen mid-stream").toBeDefined();
      process.kill(g.replica.pid, "SIGSTOP");
      const primary = new Redis({ host: g.primary.host, port: g.primary.port, lazyConnect: true });
      await primary.connect();
      await primary.client("KILL", "TYPE", "replica"); // what was sent but not read is gone with the link
      primary.disconnect();
      // The primary acknowledges entries the replica will never have; then it dies while answers stream.
      const before = await entriesIn(gateway, ids);
      await until(async () => (await entriesIn(gateway, ids)) >= before + 4 * ANSWERS, 30_000, "entries the replica never got");
      const failover = await faultMidAnswer("redis", "primary", () => g.killPrimary(), aim);
      expect(failover, "no answer was streaming when the primary was to die").toBeDefined();
      process.kill(g.replica.pid, "SIGCONT");
      await g.waitForFailover(30_000);

      const results = await Promise.all(following);
      await expectFollowsExact(gateway, ids, results, (i) => simText(request(i)));
      for (const [i, id] of ids.entries()) expectExactAnswer(entriesOf((await readEvents(gateway, id)).messages), simText(request(i)));
      expect(hitInFlight((await readTimeline(gateway, failover!.answer.id))!, failover!)).toBe(true);
      // The failover really lost acknowledged entries, and the workers wrote them again.
      const repairs = started.slice(1).map((p) => (p.output().match(/the store lost entries this run wrote/g) ?? []).length);
      expect(repairs.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    } finally {
      client.close();
    }
  }, 180_000);
});

/** Entries in the logs of `ids` all told, as the gateway reads them now. */
async function entriesIn(gateway: string, ids: readonly string[]): Promise<number> {
  const timelines = await Promise.all(ids.map((id) => readTimeline(gateway, id)));
  return timelines.reduce((n, t) => n + (t?.lastOffset ?? 0), 0);
}
