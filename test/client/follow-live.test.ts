import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { createClient, LifelineClientError, type LifelineClient, type TransportName } from "../../src/client/index.ts";
import { startInProcess } from "../support/in-process.ts";
import { oneToN, record, simAsk } from "./support/follow-record.ts";

let node: Awaited<ReturnType<typeof startInProcess>>;
beforeAll(async () => {
  node = await startInProcess({ LIFELINE_HEARTBEAT_MS: "200" });
});
afterAll(async () => {
  await node.stop();
});

const clientOver = (transport: TransportName): LifelineClient =>
  createClient({ baseUrl: node.url, WebSocket, transports: [transport], reconnect: { initialMs: 20, maxMs: 200 } });

describe.each([{ transport: "sse" as const }, { transport: "websocket" as const }])(
  "following an answer over $transport",
  ({ transport }) => {
    it("yields every entry once, in order, and the text is the simulator's answer", async () => {
      const client = clientOver(transport);
      const { request, expected } = simAsk(`live ${transport}`, 60);
      const { id } = await client.start(request);
      const follow = client.follow(id);
      const seen = await record(follow);
      expect(seen.text).toBe(expected);
      expect(seen.status).toBe("completed");
      expect(seen.offsets).toEqual(oneToN(seen.offsets.length));
      expect(seen.states).toEqual(["connecting", "live", "ended"]);
      expect(follow.text).toBe(expected);
      expect((await follow.done).entries.map((e) => e.offset)).toEqual(seen.offsets);
    });

    it("resumes from a cursor: the text continues where the first follow stopped", async () => {
      const client = clientOver(transport);
      const { request, expected } = simAsk(`resume ${transport}`, 80);
      const { id } = await client.start(request);
      const first = client.follow(id);
      let stoppedAt = 0;
      for await (const event of first) {
        if (event.type !== "entry") continue;
        stoppedAt = event.entry.offset;
        if (event.entry.type === "delta" && event.text.length > 20) break; // leaving the loop closes the follow
      }
      await expect(first.done).rejects.toThrow();
      expect(first.cursor).toBeDefined();
      const seen = await record(client.follow(id, { cursor: first.cursor, text: first.text }));
      expect(seen.text).toBe(expected);
      expect(seen.offsets[0]).toBe(stoppedAt + 1);
      expect(seen.offsets).toEqual(oneToN(seen.offsets.length).map((n) => n + stoppedAt));
    });

    it("a cursor already at the terminal entry ends at once with the final status", async () => {
      const client = clientOver(transport);
      const { request } = simAsk(`at end ${transport}`, 10);
      const { id } = await client.start(request);
      const first = client.follow(id);
      await first.done;
      const again = await client.follow(id, { cursor: first.cursor, text: first.text }).done;
      expect(again).toEqual({ text: first.text, status: "completed", entries: [] });
    });

    it("an unknown generation ends with generation_not_found, without retrying", async () => {
      const client = clientOver(transport);
      const error: unknown = await client.follow("gen_doesnotexist0000000000").done.catch((e: unknown) => e);
      expect(error).toBeInstanceOf(LifelineClientError);
      expect((error as LifelineClientError).code).toBe("generation_not_found");
    });

    it("cancel() stops the answer and the follow ends with status cancelled", async () => {
      const client = clientOver(transport);
      const { request } = simAsk(`cancel ${transport}`, 2000);
      const { id } = await client.start(request);
      const follow = client.follow(id, {
        onEvent: (event) => {
          if (event.type === "entry" && event.entry.type === "delta") void follow.cancel();
        },
      });
      const final = await follow.done;
      expect(final.status).toBe("cancelled");
      expect(final.entries.at(-1)?.type).toBe("cancelled");
    });
  },
);

describe("starting an answer", () => {
  it("the same idempotency key gives the same generation", async () => {
    const client = clientOver("sse");
    const { request } = simAsk("idempotent", 5);
    const a = await client.start(request, { idempotencyKey: "client-test-key-1" });
    const b = await client.start(request, { idempotencyKey: "client-test-key-1" });
    expect(b.id).toBe(a.id);
  });

  it("a request the server refuses is a LifelineClientError with the server's code", async () => {
    const client = clientOver("sse");
    const error: unknown = await client.start({ model: "nope", messages: [{ role: "user", content: "x" }] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LifelineClientError);
    expect((error as LifelineClientError).code).toBe("unknown_model");
    expect((error as LifelineClientError).status).toBe(400);
  });
});
