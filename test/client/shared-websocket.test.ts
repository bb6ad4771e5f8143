import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import {
  createClient,
  LifelineClientError,
  type AnswerFollow,
  type FollowEvent,
  type FollowState,
  type LifelineClient,
} from "../../src/client/index.ts";
import { SHARED_WEBSOCKET_LIMITS } from "../../src/client/ws-transport.ts";
import { startInProcess } from "../support/in-process.ts";
import { startTcpProxy, type TcpProxy } from "../support/tcp-proxy.ts";
import { oneToN, record, simAsk, type FollowRecord } from "./support/follow-record.ts";
import { until } from "../support/waits.ts";

/** The first bytes of a WebSocket upgrade: what tells the proxy's WebSocket connections from the rest. */
const WS = "GET /v1/ws";

let node: Awaited<ReturnType<typeof startInProcess>>;
let direct: LifelineClient;
let proxy: TcpProxy;
let client: LifelineClient;
beforeAll(async () => {
  node = await startInProcess({ LIFELINE_SIM_TOKENS_PER_SECOND: "200" });
  direct = createClient({ baseUrl: node.url }); // answers start directly; only following goes through the proxy
});
afterAll(async () => {
  await node.stop();
});
const throughProxy = async (): Promise<void> => {
  proxy = await startTcpProxy(Number(new URL(node.url).port));
  client = createClient({
    baseUrl: `http://127.0.0.1:${proxy.port}`,
    WebSocket,
    transports: ["websocket"],
    reconnect: { initialMs: 20, maxMs: 200 },
  });
};
afterEach(async () => {
  await proxy.close();
});

/** Starts `n` answers of `tokens` tokens each and gives back their ids with the text each must end with. */
async function startAnswers(name: string, n: number, tokens: number): Promise<{ id: string; expected: string }[]> {
  const asks = Array.from({ length: n }, (_, i) => simAsk(`${name} ${i}`, tokens + i));
  return Promise.all(asks.map(async ({ request, expected }) => ({ id: (await direct.start(request)).id, expected })));
}

function expectExact(seen: FollowRecord, expected: string, states: FollowState[]): void {
  expect(seen.text).toBe(expected);
  expect(seen.status).toBe("completed");
  expect(seen.offsets).toEqual(oneToN(seen.offsets.length)); // every offset once, in order
  expect(seen.states).toEqual(states);
}

async function openStreams(): Promise<number> {
  const text = await (await fetch(`${node.url}/metrics`)).text();
  return Number(/^lifeline_open_streams (\d+)/m.exec(text)?.[1]);
}

describe("one WebSocket per client carries all of its follows", () => {
  it("20 follows at once use exactly one connection, and every text is exact", async () => {
    await throughProxy();
    const answers = await startAnswers("together", 20, 80);
    let live = 0;
    let mostLive = 0;
    const onEvent = (event: FollowEvent): void => {
      if (event.type !== "state") return;
      if (event.state === "live") mostLive = Math.max(mostLive, ++live);
      if (event.state === "ended") live -= 1;
    };
    const seen = await Promise.all(answers.map(({ id }) => record(client.follow(id, { onEvent }))));
    seen.forEach((s, i) => expectExact(s, answers[i]!.expected, ["connecting", "live", "ended"]));
    expect(mostLive).toBe(20); // all of them on the socket at the same time
    expect(proxy.connections(WS).accepted).toBe(1);
  });

  it("a cut of the shared socket mid-answer resumes every follow on one new socket, no offset twice", async () => {
    await throughProxy();
    const answers = await startAnswers("cut", 20, 300);
    const started = new Set<string>();
    let cut = -1;
    const follows = answers.map(({ id }) =>
      client.follow(id, {
        onEvent: (event) => {
          if (event.type !== "entry" || event.entry.type !== "delta" || started.has(id)) return;
          started.add(id);
          if (started.size === answers.length) cut = proxy.cut(WS); // every answer is mid-stream
        },
      }),
    );
    const seen = await Promise.all(follows.map(record));
    expect(cut).toBe(1);
    seen.forEach((s, i) => expectExact(s, answers[i]!.expected, ["connecting", "live", "reconnecting", "resumed", "ended"]));
    expect(proxy.connections(WS).accepted).toBe(2);
  });

  it("closing one follow mid-answer unsubscribes it; the others go on on the same socket", async () => {
    await throughProxy();
    const others = await startAnswers("stays", 4, 300);
    const { request } = simAsk("closed mid-answer", 2000); // 10 s of text: still running when the others end
    const { id: closedId } = await direct.start(request);
    const closed: AnswerFollow = client.follow(closedId, {
      onEvent: (event) => {
        if (event.type === "entry" && event.entry.type === "delta") closed.close();
      },
    });
    const seen = await Promise.all(others.map(({ id }) => record(client.follow(id))));
    await expect(closed.done).rejects.toThrow(/closed/);
    seen.forEach((s, i) => expectExact(s, others[i]!.expected, ["connecting", "live", "ended"]));
    // The server stopped that subscription, not just the client's reading of it: no stream is open
    // while the closed answer still runs and the socket is still up.
    await until(async () => (await openStreams()) === 0, 2_000); // well within the idle time
    expect(((await (await fetch(`${node.url}/v1/generations/${closedId}`)).json()) as { status: string }).status).toBe("running");
    expect(proxy.connections(WS)).toEqual({ accepted: 1, open: 1 });
  });

  it("an error for one subscription fails that follow only", async () => {
    await throughProxy();
    const answers = await startAnswers("beside an error", 3, 100);
    const missing = client.follow("gen_doesnotexist0000000000");
    const seen = await Promise.all(answers.map(({ id }) => record(client.follow(id))));
    const error: unknown = await missing.done.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LifelineClientError);
    expect((error as LifelineClientError).code).toBe("generation_not_found");
    seen.forEach((s, i) => expectExact(s, answers[i]!.expected, ["connecting", "live", "ended"]));
    expect(proxy.connections(WS).accepted).toBe(1);
  });

  it("follows one after another reuse the socket, which closes once no follow has used it for the idle time", async () => {
    await throughProxy();
    for (const [i, tokens] of [20, 40, 60].entries()) {
      const [answer] = await startAnswers(`in turn ${i}`, 1, tokens);
      expectExact(await record(client.follow(answer!.id)), answer!.expected, ["connecting", "live", "ended"]);
    }
    expect(proxy.connections(WS)).toEqual({ accepted: 1, open: 1 });
    const lastEnded = Date.now();
    await until(() => proxy.connections(WS).open === 0, SHARED_WEBSOCKET_LIMITS.idleCloseMs + 5_000);
    expect(Date.now() - lastEnded).toBeGreaterThanOrEqual(SHARED_WEBSOCKET_LIMITS.idleCloseMs - 100);
  });

  it("more follows than the server allows on one connection open a second one instead of failing", async () => {
    await throughProxy();
    const n = SHARED_WEBSOCKET_LIMITS.maxSubscriptions + 10;
    const answers = await startAnswers("crowd", n, 20);
    const seen = await Promise.all(answers.map(({ id }) => record(client.follow(id))));
    seen.forEach((s, i) => expectExact(s, answers[i]!.expected, ["connecting", "live", "ended"]));
    expect(proxy.connections(WS).accepted).toBe(2);
  });

  it("client.close() stops every follow and closes the socket at once; the answers go on", async () => {
    await throughProxy();
    const answers = await startAnswers("client closed", 3, 2000);
    const follows = answers.map(({ id }) => client.follow(id));
    await until(() => follows.every((f) => f.text.length > 0));
    client.close();
    for (const follow of follows) await expect(follow.done).rejects.toThrow(/closed/);
    await until(() => proxy.connections(WS).open === 0, 2_000); // not after the idle time
    expect(() => client.follow(answers[0]!.id)).toThrow(LifelineClientError);
    expect(((await (await fetch(`${node.url}/v1/generations/${answers[0]!.id}`)).json()) as { status: string }).status).toBe("running");
    await Promise.all(answers.map(({ id }) => direct.cancel(id)));
  });
});
