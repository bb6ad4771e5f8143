import { Redis } from "ioredis";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Entry, EntryBody, GenerationRequest } from "../../../src/core/entries.ts";
import { formatOffset, parseOffset } from "../../../src/core/stream-offsets.ts";
import { generationStreamPath } from "../../../src/core/stream-paths.ts";
import type { Engine } from "../../../src/engine/port.ts";
import { RedisKeys } from "../../../src/engine/redis/keys.ts";
import { RedisEngine } from "../../../src/engine/redis/redis-engine.ts";
import { SqliteEngine } from "../../../src/engine/sqlite/sqlite-engine.ts";
import { requireRedis, startStandalone, type RedisServer } from "../../support/redis-harness.ts";
import { startStreamGateway } from "../../support/stream-gateway.ts";
import { tempDir } from "../../support/temp-dir.ts";
import { never } from "../../support/waits.ts";

const request: GenerationRequest = { model: "sim", messages: [{ role: "user", content: "a generation as a stream" }] };
const delta = (text: string, attempt: number): EntryBody => ({ type: "delta", attempt, text });

/** A generation claimed by a writer (as a worker would), with `started` and the given deltas of attempt 1. */
async function writeAnswer(engine: Engine, texts: readonly string[]): Promise<{ id: string; fence: number }> {
  const { id } = await engine.create(request);
  const claim = await engine.claim("writer", 60_000, never);
  if (claim?.id !== id) throw new Error("expected to claim the generation just created");
  const result = await engine.append(id, claim.fence, 2, [
    { type: "started", attempt: claim.fence, worker: "writer", model: "sim" },
    ...texts.map((t) => delta(t, claim.fence)),
  ]);
  expect(result.kind).toBe("appended");
  return { id, fence: claim.fence };
}

async function readJson(url: string): Promise<{ status: number; headers: Headers; body: unknown }> {
  const res = await fetch(url);
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text === "" ? undefined : JSON.parse(text) };
}

describe("a generation's log as a read-only Durable Stream (sqlite)", () => {
  const dir = tempDir("lifeline-ds-gen-");
  let gateway: Awaited<ReturnType<typeof startStreamGateway>>;
  let writer: SqliteEngine;
  beforeEach(async () => {
    gateway = await startStreamGateway({ kind: "sqlite", dataDir: dir.path }, { streamLongPollMs: 30_000 });
    writer = new SqliteEngine({ dataDir: dir.path });
  });
  afterEach(async () => {
    await gateway.stop();
    await writer.close();
  });

  it("serves every entry as one JSON message, offsets naming the entry's attempt, and closes at the terminal entry", async () => {
    const { id, fence } = await writeAnswer(writer, ["Hel", "lo"]);
    const base = `${gateway.url}${generationStreamPath(id)}`;
    const first = await readJson(`${base}?offset=-1`);
    expect(first.status).toBe(200);
    expect(first.headers.get("content-type")).toBe("application/json");
    expect(first.headers.get("stream-next-offset")).toBe(formatOffset(4, fence));
    expect(first.headers.get("stream-up-to-date")).toBe("true");
    expect(first.headers.get("stream-closed")).toBeNull();
    expect(first.body).toEqual(await writer.read(id, 0, 100));

    // A long-poll at the tail is answered by the next append; the terminal entry closes the stream.
    const waiting = readJson(`${base}?offset=${formatOffset(4, fence)}&live=long-poll`);
    const appended = await writer.append(id, fence, 5, [
      delta("!", fence),
      { type: "completed", attempt: fence, finishReason: "stop", usage: { promptTokens: 1, completionTokens: 3 } },
    ]);
    expect(appended.kind).toBe("appended");
    const next = await waiting;
    expect(next.status).toBe(200);
    expect((next.body as Entry[]).map((e) => e.offset)).toEqual([5, 6]);
    expect(next.headers.get("stream-closed")).toBe("true");
    const head = await fetch(base, { method: "HEAD" });
    expect(head.headers.get("stream-closed")).toBe("true");
    expect(head.headers.get("stream-next-offset")).toBe(formatOffset(6, fence));
    const atEnd = await fetch(`${base}?offset=${formatOffset(6, fence)}&live=long-poll`);
    expect(atEnd.status).toBe(204);
    expect(atEnd.headers.get("stream-closed")).toBe("true");
  });

  it("refuses writes with 405 stream_read_only, and an unknown generation with 404", async () => {
    const { id } = await writeAnswer(writer, ["a"]);
    const base = `${gateway.url}${generationStreamPath(id)}`;
    for (const method of ["PUT", "POST", "DELETE"]) {
      const res = await fetch(base, {
        method,
        headers: { "content-type": "application/json" },
        ...(method === "DELETE" ? {} : { body: "[1]" }),
      });
      expect(res.status).toBe(405);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("stream_read_only");
    }
    expect((await writer.read(id, 0, 10)).length).toBe(3);
    const missing = await readJson(`${gateway.url}${generationStreamPath("gen_missing")}`);
    expect(missing.status).toBe(404);
    expect(missing.body).toMatchObject({ error: { code: "stream_not_found" } });
  });

  it("answers 410 stream_reset to an offset whose entry another attempt wrote, and 400 to a malformed one", async () => {
    const { id, fence } = await writeAnswer(writer, ["a", "b"]);
    const base = `${gateway.url}${generationStreamPath(id)}`;
    const forged = await readJson(`${base}?offset=${formatOffset(3, fence + 1)}`);
    expect(forged.status).toBe(410);
    expect(forged.body).toMatchObject({ error: { code: "stream_reset" } });
    const bad = await readJson(`${base}?offset=3`);
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ error: { code: "invalid_offset" } });
  });
});

// A Redis failover that loses acknowledged entries, after which another attempt writes different
// ones at the same offsets (decision 004): the entries the client read are taken out of the log the
// way a promoted replica that never got them would lack them.
describe("a generation's stream across a Redis reset", () => {
  let server: RedisServer | undefined;
  let gateway: Awaited<ReturnType<typeof startStreamGateway>> | undefined;
  let writer: RedisEngine | undefined;
  let raw: Redis | undefined;
  const prefix = `dsr${process.pid}`;
  beforeEach(async (ctx) => {
    requireRedis(ctx);
    server = await startStandalone();
    const target = { mode: "standalone" as const, url: server.url };
    gateway = await startStreamGateway({ kind: "redis", target, prefix }, { streamLongPollMs: 30_000 });
    writer = new RedisEngine({ target, prefix });
    raw = new Redis(server.url);
  });
  afterEach(async () => {
    raw?.disconnect();
    await writer?.close();
    await gateway?.stop();
    await server?.stop();
  });

  /** Drops the entries after `keep`, as a failover to a replica that had only those would. */
  async function loseEntriesAfter(id: string, keep: number): Promise<void> {
    const keys = new RedisKeys(prefix);
    // The log is written again with only the kept entries: a stream's last ID cannot move back otherwise.
    const kept = (await raw!.xrange(keys.log(id), "-", `${keep}-0`)) as [string, string[]][];
    await raw!.del(keys.log(id));
    for (const [entryId, fields] of kept) await raw!.xadd(keys.log(id), entryId, ...fields);
    await raw!.hset(keys.meta(id), "last", keep);
  }

  it("never serves another attempt's entries after an offset: a reader there gets 410 stream_reset, an open SSE read ends", async () => {
    const { id, fence } = await writeAnswer(writer!, ["one ", "two ", "three ", "four "]);
    const base = `${gateway!.url}${generationStreamPath(id)}`;
    const read = await readJson(`${base}?offset=-1`);
    const tail = read.headers.get("stream-next-offset")!;
    expect(parseOffset(tail)).toEqual({ position: 6, attempt: fence });

    // A reader follows live from the tail it has.
    const sse = await fetch(`${base}?offset=${tail}&live=sse`);
    expect(sse.status).toBe(200);
    const sseText = sse.text();

    // The failover loses entries 5 and 6; a new attempt takes the answer over and writes there.
    await loseEntriesAfter(id, 4);
    await writer!.release(id, fence);
    const claim = await writer!.claim("rescuer", 60_000, never);
    expect(claim?.fence).toBeGreaterThan(fence);
    const again = claim!.fence;
    const written = await writer!.append(id, again, 5, [
      { type: "started", attempt: again, worker: "rescuer", model: "sim" },
      delta("another three ", again),
      delta("another four", again),
    ]);
    expect(written.kind).toBe("appended");

    // The open SSE read ends without sending a byte of the new attempt's entries, and not closed.
    const events = await sseText;
    expect(events).not.toContain("another");
    expect(events).not.toContain("streamClosed");
    // Its reconnect, and any read after an offset of a lost entry, is refused.
    for (const position of [5, 6]) {
      const gone = await readJson(`${base}?offset=${formatOffset(position, fence)}`);
      expect(gone.status).toBe(410);
      expect(gone.body).toMatchObject({ error: { code: "stream_reset" } });
    }
    // A reader from the start gets the log as it stands now, under offsets of the new attempt.
    const fresh = await readJson(`${base}?offset=-1`);
    expect((fresh.body as Entry[]).slice(4).map((e) => e.attempt)).toEqual([again, again, again]);
    expect(fresh.headers.get("stream-next-offset")).toBe(formatOffset(7, again));
  });
});
