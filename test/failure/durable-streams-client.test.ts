import { stream, type JsonBatch } from "@durable-streams/client";
import { afterEach, describe, expect, it } from "vitest";
import type { Entry } from "../../src/core/entries.ts";
import { generationStreamPath } from "../../src/core/stream-paths.ts";
import { expectExactAnswer } from "../support/invariants.ts";
import { useLifelineProcesses } from "../support/lifeline-processes.ts";
import { simRequest, simText } from "../support/sim-answer.ts";
import { entriesOf, readEvents, startGeneration } from "../support/sse-client.ts";
import { startTcpProxy, type TcpProxy } from "../support/tcp-proxy.ts";
import { tempDir } from "../support/temp-dir.ts";

// The official Durable Streams client reads a generation's JSON stream through a TCP proxy, from a
// gateway process, while the worker writing the answer is SIGKILLed and the client's connection is
// cut: it must end with exactly the log, whose text is the uninterrupted answer.
describe("the official Durable Streams client reading a generation through failures", () => {
  const start = useLifelineProcesses();
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it.each(["sse", "long-poll"] as const)(
    "live=%s: a worker SIGKILLed and the connection cut mid-answer, and the client ends with exactly the log",
    async (live) => {
      const data = tempDir();
      cleanups.push(() => data.remove());
      const env = { LIFELINE_DATA_DIR: data.path, LIFELINE_LEASE_MS: "1500", LIFELINE_SIM_TOKENS_PER_SECOND: "25" };
      const gateway = await start("gateway", env);
      const first = await start("worker", { ...env, LIFELINE_WORKER_NAME: "first" });
      const proxy: TcpProxy = await startTcpProxy(Number(new URL(gateway.url).port));
      cleanups.push(() => proxy.close());
      const request = simRequest(`the durable streams client, ${live}`, { max_tokens: 90, seed: 5 });
      const id = await startGeneration(gateway.url, request);

      const items: Entry[] = [];
      let closed = false;
      let resumes = 0;
      const abort = new AbortController();
      cleanups.push(() => abort.abort());
      // What an application does with this client: read from the last offset it holds, and when a
      // read ends in an error (this client version gives up on an SSE connection that is reset,
      // where a long-poll retries by itself), read again from that offset.
      const follow = (async () => {
        let offset = "-1";
        while (!closed && !abort.signal.aborted) {
          const res = await stream<Entry>({
            url: `http://127.0.0.1:${proxy.port}${generationStreamPath(id)}`,
            offset,
            live,
            signal: abort.signal,
            backoffOptions: { initialDelay: 50, maxDelay: 500, multiplier: 2 },
          });
          // Ends with the batch that says the stream is closed (this client resolves `closed` a
          // moment before it delivers that batch), or with the read's error.
          let current = true;
          await new Promise<void>((resolve) => {
            res.subscribeJson<Entry>((batch: JsonBatch<Entry>) => {
              if (!current) return; // a read given up on delivers nothing more
              items.push(...batch.items);
              offset = batch.offset;
              if (batch.streamClosed) {
                closed = true;
                resolve();
              }
            });
            res.closed.catch(() => {
              resumes += 1;
              resolve();
            });
          });
          current = false;
          res.cancel();
        }
      })();

      // Mid-answer: the first worker dies with the answer half written.
      await expect.poll(() => items.filter((e) => e.type === "delta").length, { timeout: 30_000, interval: 20 }).toBeGreaterThanOrEqual(3);
      first.child.kill("SIGKILL");
      await start("worker", { ...env, LIFELINE_WORKER_NAME: "second" });
      await expect.poll(() => items.filter((e) => e.type === "started").length, { timeout: 30_000, interval: 20 }).toBe(2);

      // Mid-answer again: every connection the client has open to the gateway is reset.
      const before = items.length;
      await expect.poll(() => items.length, { timeout: 30_000, interval: 20 }).toBeGreaterThan(before + 2);
      expect(proxy.cut(generationStreamPath(id))).toBeGreaterThan(0);

      await expect.poll(() => closed, { timeout: 60_000, interval: 50 }).toBe(true);
      await follow;
      // A long-poll client retries by itself; an SSE one is read again from its offset.
      if (live === "long-poll") expect(resumes).toBe(0);
      // The client reconnected through the proxy after the cut, and read on from its offset.
      expect(proxy.connections(generationStreamPath(id)).accepted).toBeGreaterThan(1);
      const log = entriesOf((await readEvents(gateway.url, id)).messages);
      expect(items).toEqual(log);
      expectExactAnswer(items, simText(request));
      expect(items.filter((e) => e.type === "started").map((e) => e.attempt)).toEqual([1, 2]);
    },
    120_000,
  );
});
