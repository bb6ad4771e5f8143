import { beforeEach, describe, expect, it } from "vitest";
import { faultMidAnswer, hitInFlight, killWorkerMidAnswer } from "../../src/chaos/aimed-fault.ts";
import { checkFollow, type CheckedFollow } from "../../src/chaos/follow-check.ts";
import { readTimeline } from "../../src/chaos/in-flight.ts";
import type { LifelineProcess } from "../../src/chaos/lifeline-process.ts";
import { createClient, type FollowEvent, type LifelineClient, type TransportName } from "../../src/client/index.ts";
import type { Entry } from "../../src/core/entries.ts";
import { expectExactAnswer } from "../support/invariants.ts";
import { requireRedis } from "../support/redis-harness.ts";
import { roundRobinFetch } from "../support/round-robin-fetch.ts";
import { useSentinelDeployment } from "../support/sentinel-deployment.ts";
import { entriesOf, readEvents } from "../support/sse-client.ts";
import { simRequest, simText } from "../support/sim-answer.ts";

beforeEach((ctx) => requireRedis(ctx));

const ANSWERS = 50;
const MAX_TOKENS = 80;
const request = (i: number) => simRequest(`question number ${i}`, { max_tokens: MAX_TOKENS, seed: i });

describe("distributed mode: 2 gateways, 3 workers, Redis with Sentinel", () => {
  const deployment = useSentinelDeployment();

  it("a worker SIGKILLed mid-answer, the primary SIGKILLed mid-answer and clients switching gateways: every text is exact", async () => {
    const g = deployment.group();
    const env = deployment.env("chaos", { LIFELINE_LEASE_MS: "8000", LIFELINE_SIM_TOKENS_PER_SECOND: "16" });
    const [ga, gb, ...named] = await Promise.all([
      deployment.start("gateway", env),
      deployment.start("gateway", env),
      ...["w1", "w2", "w3"].map(async (name) => [name, await deployment.start("worker", { ...env, LIFELINE_WORKER_NAME: name })] as const),
    ]);
    const workers = new Map<string, LifelineProcess>(named as (readonly [string, LifelineProcess])[]);
    const gateways = [ga.url, gb.url];

    // One SDK client per answer, its requests spread over both gateways in turn; half follow over
    // SSE, half over long-poll. Each SSE stream is cut once, so it resumes on the other gateway.
    const clients: LifelineClient[] = [];
    const answers = await Promise.all(
      Array.from({ length: ANSWERS }, async (_, i) => {
        const route = roundRobinFetch(i % 2 === 0 ? gateways : [...gateways].reverse());
        const transport: TransportName = i % 4 < 2 ? "sse" : "long-poll";
        const client = createClient({
          baseUrl: route.baseUrl,
          fetch: route.fetch,
          transports: [transport],
          reconnect: { initialMs: 100, maxMs: 2000 },
          heartbeatTimeoutMs: 5000,
        });
        clients.push(client);
        const { id } = await client.start(request(i), { idempotencyKey: `chaos-${i}` });
        return { i, id, route, client, expectedChars: simText(request(i)).length };
      }),
    );
    const following: Promise<CheckedFollow>[] = answers.map(({ i, id, route, client }) => {
      let applied = 0;
      const switchAfter = 5 + (i % 20);
      const onEvent = (e: FollowEvent): void => {
        if (e.type === "entry" && ++applied === switchAfter) route.drop();
      };
      return checkFollow(client.follow(id), { onEvent });
    });
    const allEnded = new AbortController();
    void Promise.allSettled(following).then(() => allEnded.abort());

    try {
      // A worker dies while it writes an answer; then Redis dies while an answer streams, and
      // Sentinel promotes the replica.
      const aim = { gateway: ga.url, answers: () => answers, signal: allEnded.signal };
      const workerKill = await killWorkerMidAnswer(workers, aim);
      expect(workerKill, "no worker was ever seen mid-answer").toBeDefined();
      const primaryKill = await faultMidAnswer("redis", "primary", () => g.killPrimary(), aim);
      expect(primaryKill, "no answer was ever seen mid-stream").toBeDefined();
      await g.waitForFailover(30_000);

      const results = await Promise.all(following);
      for (const [i, result] of results.entries()) {
        expect(result.text, `answer ${i}`).toBe(simText(request(i)));
        expect(result.status).toBe("completed");
        // What the application applied: 1, 2, 3 … with no gap and no repeat (a reset would restart at 1).
        expect(result.resets, `resets of answer ${i}`).toBe(0);
        expect(result.problem).toBeUndefined();
        expect(result.applied).toEqual(result.applied.map((_, k) => k + 1));
      }
      // Clients really switched gateways mid-answer. A long-poll follow whose next poll came late
      // (a loaded machine, the failover) may have got the rest of its answer in the poll that
      // triggered the switch and asked nothing more: a few may have been served by one gateway.
      const switched = answers.filter((a) => a.route.used.size === 2).length;
      expect(switched, "answers served by both gateways").toBeGreaterThanOrEqual(ANSWERS - 5);
      for (const [i, { id }] of answers.entries()) expectExactAnswer(await readLog(gateways[i % 2]!, id), simText(request(i)));

      // Both faults hit an answer in flight: the killed worker's attempt was taken over by another
      // worker, and the answer streaming at the failover ended after it.
      for (const fault of [workerKill!, primaryKill!]) {
        const timeline = await readTimeline(ga.url, fault.answer.id);
        expect(hitInFlight(timeline!, fault), JSON.stringify(fault)).toBe(true);
      }
      const takenOver = (await Promise.all(answers.map(({ id }) => readLog(ga.url, id)))).filter(
        (log) => log.filter((e) => e.type === "started").length > 1,
      );
      expect(takenOver.length).toBeGreaterThan(0);
    } finally {
      for (const client of clients) client.close();
    }
  }, 180_000);
});

async function readLog(gateway: string, id: string): Promise<Entry[]> {
  return entriesOf((await readEvents(gateway, id)).messages);
}
