import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { createClient, type TransportName } from "../../src/client/index.ts";
import { startInProcess } from "../support/in-process.ts";
import { startTcpProxy } from "../support/tcp-proxy.ts";
import { startChaosProxy } from "../../src/chaos/chaos-proxy.ts";
import { oneToN, record, simAsk } from "./support/follow-record.ts";

const ANSWERS = 30;

let node: Awaited<ReturnType<typeof startInProcess>>;
let port: number;
beforeAll(async () => {
  // Heartbeats slower than the client's watchdog: a dead link must be found by the client itself.
  node = await startInProcess({ LIFELINE_HEARTBEAT_MS: "3000", LIFELINE_SIM_TOKENS_PER_SECOND: "200" });
  port = Number(new URL(node.url).port);
});
afterAll(async () => {
  await node.stop();
});

describe.each([
  { transport: "sse" as TransportName, seed: 11 },
  { transport: "websocket" as TransportName, seed: 12 },
  { transport: "long-poll" as TransportName, seed: 13 },
])("over $transport, through a proxy that cuts every connection at a random moment", ({ transport, seed }) => {
  it(`${ANSWERS} answers all end byte-identical and no offset reaches the application twice`, async () => {
    const proxy = await startChaosProxy(port, { minMs: 30, maxMs: 250, seed });
    try {
      const client = createClient({ baseUrl: proxy.url, WebSocket, transports: [transport], reconnect: { initialMs: 10, maxMs: 150 } });
      const runs = Array.from({ length: ANSWERS }, async (_, i) => {
        // Each answer streams for longer than a connection may live (300+ tokens at 200 tokens/s
        // against at most 250 ms), so every follow is cut mid-stream, however loaded the machine:
        // the sim keeps its pace by the clock, and a loaded machine only delays the first byte.
        const { request, expected } = simAsk(`chaos ${transport} ${i}`, 300 + i * 3);
        const { id } = await client.start(request); // the POST is cut too, sometimes: retried with its key
        return { expected, seen: await record(client.follow(id)) };
      });
      const results = await Promise.all(runs);
      let reconnects = 0;
      for (const { expected, seen } of results) {
        expect(seen.text).toBe(expected);
        expect(seen.status).toBe("completed");
        expect(seen.offsets).toEqual(oneToN(seen.offsets.length));
        reconnects += seen.states.filter((s) => s === "reconnecting").length;
      }
      // WebSocket follows share one socket per client, so its cuts are fewer and each hits them all.
      expect(proxy.cuts).toBeGreaterThan(transport === "websocket" ? 5 : ANSWERS);
      console.info(`chaos ${transport}: ${proxy.cuts} cuts, ${reconnects} reconnects for ${ANSWERS} answers`);
      expect(reconnects).toBeGreaterThan(ANSWERS / 2);
    } finally {
      await proxy.close();
    }
  });
});

describe.each([
  { transport: "sse" as TransportName, seed: 21 },
  { transport: "websocket" as TransportName, seed: 22 },
  { transport: "long-poll" as TransportName, seed: 23 },
])("over $transport, through a proxy that adds 0–300 ms of jitter and cuts connections at random", ({ transport, seed }) => {
  // A node of its own at 50 tokens/s: 200 answers at 200 tokens/s are more than a loaded machine
  // keeps pace with, and the sim, keeping its schedule by the clock, then writes them in bursts
  // that a late follow reads whole before any cut.
  let paced: Awaited<ReturnType<typeof startInProcess>>;
  beforeAll(async () => {
    paced = await startInProcess({ LIFELINE_HEARTBEAT_MS: "3000", LIFELINE_SIM_TOKENS_PER_SECOND: "50" });
  });
  afterAll(async () => {
    await paced.stop();
  });

  it("200 answers all end byte-identical and no offset reaches the application twice", async () => {
    const proxy = await startChaosProxy(Number(new URL(paced.url).port), { minMs: 100, maxMs: 1500, seed, jitterMs: 300 });
    try {
      const client = createClient({ baseUrl: proxy.url, WebSocket, transports: [transport], reconnect: { initialMs: 20, maxMs: 300 } });
      const direct = createClient({ baseUrl: paced.url }); // answers start directly; following is what goes through the chaos
      const runs = Array.from({ length: 200 }, async (_, i) => {
        // Each answer streams for several times as long as a connection may live (400+ tokens at
        // 50 tokens/s against at most 1.5 s), so its follow is cut mid-stream.
        const { request, expected } = simAsk(`jitter ${transport} ${i}`, 400 + (i % 100));
        const { id } = await direct.start(request);
        return { expected, seen: await record(client.follow(id)) };
      });
      const results = await Promise.all(runs);
      let resumed = 0;
      for (const { expected, seen } of results) {
        expect(seen.text).toBe(expected);
        expect(seen.status).toBe("completed");
        expect(seen.offsets).toEqual(oneToN(seen.offsets.length));
        // Resumed: it was live, was cut, and went on (a cut before the first open is still "connecting").
        if (seen.states.includes("resumed")) resumed += 1;
      }
      expect(proxy.cuts).toBeGreaterThan(transport === "websocket" ? 3 : 20);
      console.info(`chaos ${transport}: ${proxy.cuts} cuts, ${resumed} of 200 answers resumed mid-stream`);
      expect(resumed).toBeGreaterThan(20); // many answers really were cut mid-stream and resumed
    } finally {
      await proxy.close();
    }
  }, 120_000);
});

describe.each([
  { transport: "sse" as TransportName, marker: "/events" },
  { transport: "websocket" as TransportName, marker: "GET /v1/ws" },
  { transport: "long-poll" as TransportName, marker: "/poll" },
])("the heartbeat watchdog over $transport", ({ transport, marker }) => {
  it("a link that silently stops forwarding is dropped and resumed by the client itself", async () => {
    const proxy = await startTcpProxy(port);
    try {
      const client = createClient({
        baseUrl: `http://127.0.0.1:${proxy.port}`,
        WebSocket,
        transports: [transport],
        heartbeatTimeoutMs: 400,
        reconnect: { initialMs: 10, maxMs: 100 },
      });
      const { request, expected } = simAsk(`watchdog ${transport}`, 300);
      const { id } = await client.start(request);
      let silencedAt = 0;
      let noticedAfter = -1;
      const follow = client.follow(id, {
        onEvent: (event) => {
          if (event.type === "entry" && event.entry.type === "delta" && silencedAt === 0) {
            silencedAt = Date.now();
            expect(proxy.blackhole(marker)).toBeGreaterThan(0); // long-poll may have two pooled connections open
          }
          if (event.type === "state" && event.state === "reconnecting" && noticedAfter < 0) noticedAfter = Date.now() - silencedAt;
        },
      });
      const seen = await record(follow);
      expect(seen.text).toBe(expected);
      expect(seen.offsets).toEqual(oneToN(seen.offsets.length));
      expect(seen.states).toEqual(["connecting", "live", "reconnecting", "resumed", "ended"]);
      // Found by the client's own 400 ms watchdog: nothing the server sends crosses a silent link,
      // so without it the follow would wait forever; and not before the watchdog's time.
      expect(noticedAfter).toBeGreaterThanOrEqual(350);
    } finally {
      await proxy.close();
    }
  });
});
