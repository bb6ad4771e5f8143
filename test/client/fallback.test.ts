import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { LifelineClientError, createClient, type LifelineClient } from "../../src/client/index.ts";
import { startInProcess } from "../support/in-process.ts";
import { startBlockingProxy } from "./support/blocking-proxy.ts";
import { oneToN, record, simAsk } from "./support/follow-record.ts";

let node: Awaited<ReturnType<typeof startInProcess>>;
let port: number;
beforeAll(async () => {
  node = await startInProcess({ LIFELINE_HEARTBEAT_MS: "100", LIFELINE_SIM_TOKENS_PER_SECOND: "100" });
  port = Number(new URL(node.url).port);
});
afterAll(async () => {
  await node.stop();
});

/** Starts an answer, follows it with `client` and checks it ended exact, over long-poll. */
async function expectExactOverLongPoll(client: LifelineClient, question: string): Promise<void> {
  const { request, expected } = simAsk(question, 60);
  const follow = client.follow((await client.start(request)).id);
  const seen = await record(follow);
  expect(seen.text).toBe(expected);
  expect(seen.offsets).toEqual(oneToN(seen.offsets.length));
  expect(follow.transport).toBe("long-poll");
}

describe("falling back SSE → WebSocket → long-poll where a proxy blocks a transport", () => {
  it("event streams refused with a proxy's 403 page and WebSocket upgrades refused: the answer arrives over long-poll, exact", async () => {
    const proxy = await startBlockingProxy(port, { eventStreams: "refuse", refuseWebSockets: true });
    try {
      const client = createClient({ baseUrl: proxy.url, WebSocket, reconnect: { initialMs: 10, maxMs: 50 } });
      await expectExactOverLongPoll(client, "fallback past a refusing proxy");
      // SSE is left at its first refusal (a proxy's page, not the gateway's answer); WebSocket after three failed opens.
      expect(proxy.seen.events).toBe(1);
      expect(proxy.seen.upgrade).toBe(3);
      expect(proxy.seen.poll).toBeGreaterThan(0);

      // The client's next follow starts where the last one got through: no new refusals.
      await expectExactOverLongPoll(client, "and again");
      expect([proxy.seen.events, proxy.seen.upgrade]).toEqual([1, 3]);
    } finally {
      await proxy.close();
    }
  });

  it("event streams held back by a buffering proxy: the watchdog gives up on them, and the answer arrives exact", async () => {
    const proxy = await startBlockingProxy(port, { eventStreams: "buffer", refuseWebSockets: true });
    try {
      const client = createClient({ baseUrl: proxy.url, WebSocket, heartbeatTimeoutMs: 300, reconnect: { initialMs: 10, maxMs: 50 } });
      await expectExactOverLongPoll(client, "fallback past a buffering proxy");
      // Headers came through each time but nothing else: three such streams count as three failed opens.
      expect(proxy.seen.events).toBe(3);
      expect(proxy.seen.upgrade).toBe(3);
    } finally {
      await proxy.close();
    }
  });

  it("when every transport is refused, the follow fails with the proxy's answer instead of retrying forever", async () => {
    const proxy = await startBlockingProxy(port, { eventStreams: "refuse", refuseWebSockets: true, refuseAllReads: true });
    try {
      const client = createClient({ baseUrl: proxy.url, WebSocket, reconnect: { initialMs: 10, maxMs: 50 } });
      const { id } = await client.start(simAsk("nothing gets through", 5).request);
      const error = await client.follow(id).done.catch((e: unknown) => e);
      expect(error).toBeInstanceOf(LifelineClientError);
      expect((error as LifelineClientError).code).toBe("http_403");
      // One refusal each for SSE and long-poll; WebSocket, whose refusal a browser cannot see, after three failed opens.
      expect([proxy.seen.events, proxy.seen.upgrade, proxy.seen.poll]).toEqual([1, 3, 1]);
    } finally {
      await proxy.close();
    }
  });

  it("the gateway's own final answer is not taken for a block: an unknown answer fails at once", async () => {
    const client = createClient({ baseUrl: node.url, WebSocket });
    const error = await client.follow("gen_doesnotexist").done.catch((e: unknown) => e);
    expect((error as LifelineClientError).code).toBe("generation_not_found");
  });
});
