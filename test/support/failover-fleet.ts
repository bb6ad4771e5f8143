import { expect } from "vitest";
import type { LifelineProcess } from "../../src/chaos/lifeline-process.ts";
import { segmentsAreContiguous, type CheckedFollow } from "../../src/chaos/follow-check.ts";
import { createClient, type LifelineClient } from "../../src/client/index.ts";
import { entriesOf, readEvents } from "./sse-client.ts";

/**
 * What the Redis failover tests put through a failover: a gateway and two workers (`w1`, `w2`) on
 * `env`, and a client that follows over SSE and reconnects within 2 s.
 */
export async function startFailoverFleet(
  start: (command: "gateway" | "worker", env: Record<string, string>) => Promise<LifelineProcess>,
  env: Record<string, string>,
): Promise<{ readonly processes: readonly LifelineProcess[]; readonly gateway: string; readonly client: LifelineClient }> {
  const processes = await Promise.all([
    start("gateway", env),
    start("worker", { ...env, LIFELINE_WORKER_NAME: "w1" }),
    start("worker", { ...env, LIFELINE_WORKER_NAME: "w2" }),
  ]);
  const gateway = processes[0].url;
  const client = createClient({
    baseUrl: gateway,
    transports: ["sse"],
    reconnect: { initialMs: 100, maxMs: 2000 },
    heartbeatTimeoutMs: 5000,
  });
  return { processes, gateway, client };
}

/**
 * Every follow of `ids` ended with its expected text, seamless or told to rebuild (a `reset`, where
 * a new attempt had replaced entries a failover lost), never misled. Where a text differs, what the
 * client applied and what the log holds are printed first.
 */
export async function expectFollowsExact(
  gateway: string,
  ids: readonly string[],
  results: readonly CheckedFollow[],
  expected: (i: number) => string,
): Promise<void> {
  for (const [i, result] of results.entries()) {
    if (result.text === expected(i)) continue;
    const log = entriesOf((await readEvents(gateway, ids[i]!)).messages);
    console.log(
      "text differs",
      i,
      JSON.stringify(result.applied),
      JSON.stringify(log.map((e) => [e.offset, e.type, e.attempt, e.type === "delta" ? e.text : ""])),
    );
  }
  results.forEach((result, i) => {
    expect(result.text, `answer ${i}`).toBe(expected(i));
    expect(segmentsAreContiguous(result.applied)).toBe(true);
    expect(result.problem).toBeUndefined();
  });
}
