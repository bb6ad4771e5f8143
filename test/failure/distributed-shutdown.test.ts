import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { faultMidAnswer, hitInFlight } from "../../src/chaos/aimed-fault.ts";
import { checkFollow, type CheckedFollow } from "../../src/chaos/follow-check.ts";
import { findAnswerInFlight, readTimeline } from "../../src/chaos/in-flight.ts";
import type { LifelineProcess } from "../../src/chaos/lifeline-process.ts";
import { createClient, type FollowEvent, type LifelineClient } from "../../src/client/index.ts";
import type { Entry } from "../../src/core/entries.ts";
import { expectExactAnswer } from "../support/invariants.ts";
import { useLifelineProcesses } from "../support/lifeline-processes.ts";
import { redisAvailable, requireRedis, startStandalone, type RedisServer } from "../support/redis-harness.ts";
import { roundRobinFetch, type RoundRobin } from "../support/round-robin-fetch.ts";
import { entriesOf, readEvents, startGeneration } from "../support/sse-client.ts";
import { simRequest, simText } from "../support/sim-answer.ts";

beforeEach((ctx) => requireRedis(ctx));

const request = (i: number, max_tokens = 60) => simRequest(`shutdown ${i}`, { max_tokens, seed: i });
const reconnect = { initialMs: 100, maxMs: 2000 };

describe("graceful shutdown in the distributed mode", () => {
  let redis: RedisServer | undefined;
  const launch = useLifelineProcesses();
  const clients: LifelineClient[] = [];
  beforeAll(async () => {
    if (redisAvailable()) redis = await startStandalone();
  });
  afterEach(() => {
    for (const client of clients.splice(0)) client.close();
  });
  afterAll(async () => {
    await redis?.stop();
  });
  const start = (command: "gateway" | "worker", env: Record<string, string>): Promise<LifelineProcess> =>
    launch(command, { LIFELINE_ENGINE: "redis", LIFELINE_REDIS_URL: redis!.url, LIFELINE_SIM_TOKENS_PER_SECOND: "20", ...env });

  it("SIGTERM on a gateway ends its streams and clients resume on another", async () => {
    const env = { LIFELINE_REDIS_PREFIX: `gw${process.pid}`, LIFELINE_LEASE_MS: "5000" };
    const [a, b] = await Promise.all([start("gateway", env), start("gateway", env), start("worker", env)]);
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) ids.push(await startGeneration(a.url, request(i)));
    // One SDK client per answer, its requests going to a and b in turn: each follow starts on a.
    const follows: { route: RoundRobin; live: Promise<void>; result: Promise<CheckedFollow> }[] = ids.map((id) => {
      const route = roundRobinFetch([a.url, b.url]);
      const client = createClient({ baseUrl: route.baseUrl, fetch: route.fetch, transports: ["sse"], reconnect });
      clients.push(client);
      let live = (): void => undefined;
      const first = new Promise<void>((resolve) => (live = resolve));
      const onEvent = (e: FollowEvent): void => {
        if (e.type === "entry") live();
      };
      return { route, live: first, result: checkFollow(client.follow(id), { onEvent }) };
    });
    await Promise.all(follows.map((f) => f.live)); // every follow streams from a

    const aim = { gateway: a.url, answers: () => ids.map((id, i) => ({ id, expectedChars: simText(request(i)).length })) };
    let exitCode: number | null | undefined;
    const fault = await faultMidAnswer("gateway", a.url, async () => (exitCode = await a.terminate()), aim);
    expect(exitCode).toBe(0);
    const results = await Promise.all(follows.map((f) => f.result));
    results.forEach((result, i) => {
      expect(result.text).toBe(simText(request(i)));
      expect(result.problem).toBeUndefined();
      expect(result.applied).toEqual(result.applied.map((_, k) => k + 1));
      expect(follows[i]!.route.used).toEqual(new Set([a.url, b.url]));
    });
    expect(hitInFlight((await readTimeline(b.url, fault!.answer.id))!, fault!)).toBe(true);
  });

  it("SIGTERM on a worker hands its answers over at once, without waiting for the lease", async () => {
    const env = { LIFELINE_REDIS_PREFIX: `wk${process.pid}`, LIFELINE_LEASE_MS: "600000" };
    const gateway = await start("gateway", env);
    const first = await start("worker", { ...env, LIFELINE_WORKER_NAME: "first" });
    const client = createClient({ baseUrl: gateway.url, reconnect });
    clients.push(client);
    // Long enough to be still running once the second worker has started, however slowly.
    const answers = await Promise.all(
      [100, 101, 102, 103, 104].map(async (n) => ({
        n,
        id: (await client.start(request(n, 400))).id,
        expectedChars: simText(request(n, 400)).length,
      })),
    );
    const following = answers.map(({ id }) => checkFollow(client.follow(id)));
    const onFirst = async (): Promise<void> => {
      for (const answer of answers) {
        const held = await findAnswerInFlight({ gateway: gateway.url, answers: () => [answer], worker: () => true });
        expect(held?.worker).toBe("first");
      }
    };
    await onFirst();
    // The second worker writes the rest of what it is handed at ten times the pace: the hand-over is
    // what this test proves, not how long the rest of 400 tokens takes at 20 a second.
    await start("worker", { ...env, LIFELINE_WORKER_NAME: "second", LIFELINE_SIM_TOKENS_PER_SECOND: "200" });
    // Every answer is still mid-stream on the first worker when it is told to stop.
    await onFirst();
    expect(await first.terminate()).toBe(0);
    const results = await Promise.all(following);
    for (const [i, { n, id }] of answers.entries()) {
      expect(results[i]).toMatchObject({ text: simText(request(n, 400)), status: "completed", problem: undefined });
      const entries = entriesOf((await readEvents(gateway.url, id)).messages);
      expectExactAnswer(entries, simText(request(n, 400)));
      const workers = entries.filter((e): e is Extract<Entry, { type: "started" }> => e.type === "started").map((e) => e.worker);
      expect(workers).toEqual(["first", "second"]);
    }
  }, 120_000);
});
