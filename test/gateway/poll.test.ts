import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Entry } from "../../src/core/entries.ts";
import { loadConfig } from "../../src/cli/config.ts";
import { startNode } from "../../src/cli/node.ts";
import type { PollResponse } from "../../src/core/wire.ts";
import { startInProcess } from "../support/in-process.ts";
import { expectExactAnswer } from "../support/invariants.ts";
import { startGeneration } from "../support/sse-client.ts";
import { simRequest, simText } from "../support/sim-answer.ts";

const ask = (content: string, max_tokens = 40) => simRequest(content, { max_tokens });
const expected = (content: string, max_tokens = 40): string => simText(ask(content, max_tokens));

interface Poll {
  readonly status: number;
  readonly body: PollResponse | undefined;
}

describe("HTTP long-poll: GET /v1/generations/:id/poll", () => {
  let node: Awaited<ReturnType<typeof startInProcess>>;
  let slow: Awaited<ReturnType<typeof startInProcess>>;
  beforeAll(async () => {
    [node, slow] = await Promise.all([startInProcess(), startInProcess({ LIFELINE_SIM_TOKENS_PER_SECOND: "5" })]);
  });
  afterAll(async () => {
    await Promise.all([node.stop(), slow.stop()]);
  });

  const poll = async (
    base: string,
    id: string,
    query: Record<string, string> = {},
    headers: Record<string, string> = {},
  ): Promise<Poll> => {
    const url = new URL(`/v1/generations/${id}/poll`, base);
    for (const [k, v] of Object.entries(query)) url.searchParams.append(k, v);
    const res = await fetch(url, { headers });
    if (res.status === 204) return { status: 204, body: undefined };
    return { status: res.status, body: (await res.json()) as PollResponse };
  };

  /** Polls from `from` until the server says the log is over; every response and every entry, in order. */
  const pollToEnd = async (
    base: string,
    id: string,
    from?: string,
  ): Promise<{ polls: PollResponse[]; entries: Entry[]; cursors: string[]; last: Poll }> => {
    const polls: PollResponse[] = [];
    let cursor = from;
    for (;;) {
      const got = await poll(base, id, cursor === undefined ? {} : { from: cursor });
      if (got.status !== 200 || !got.body) return { polls, entries: entriesIn(polls), cursors: cursorsIn(polls), last: got };
      polls.push(got.body);
      cursor = got.body.cursor;
    }
  };

  it("carries a whole answer, poll after poll, with contiguous cursors; a poll at the terminal entry gets 204", async () => {
    const resumes = async (): Promise<number> =>
      Number(/^lifeline_resumes_total (\d+)/m.exec(await (await fetch(`${slow.url}/metrics`)).text())?.[1]);
    const resumesBefore = await resumes();
    expect(resumesBefore).toBeGreaterThanOrEqual(0); // the counter is there
    const id = await startGeneration(slow.url, ask("poll me", 12));
    const { polls, entries, cursors, last } = await pollToEnd(slow.url, id);
    expect(await resumes()).toBe(resumesBefore); // each poll continues a cursor: that is not a reconnect
    expectExactAnswer(entries, expected("poll me", 12));
    expect(cursors).toEqual(entries.map((e) => String(e.offset)));
    // At 5 tokens a second the answer arrived over many polls, each returning as soon as it had something.
    expect(polls.length).toBeGreaterThan(3);
    expect(polls.every((p) => p.events.length > 0)).toBe(true);
    expect(polls.slice(0, -1).every((p) => !p.ended)).toBe(true);
    expect(polls[polls.length - 1]?.ended).toBe(true);
    expect(polls.map((p) => p.cursor)).toEqual(polls.map((p) => cursorsIn([p]).at(-1)));
    expect(last.status).toBe(204);
  });

  it("returns everything the log already holds in one response", async () => {
    const id = await startGeneration(node.url, ask("all at once", 30));
    await pollToEnd(node.url, id); // the answer is over
    const { status, body } = await poll(node.url, id);
    expect(status).toBe(200);
    expect(body?.ended).toBe(true);
    expectExactAnswer(entriesIn([body!]), expected("all at once", 30));
  });

  it("resumes after a cursor, by `from` or by Last-Event-ID (which wins)", async () => {
    const id = await startGeneration(node.url, ask("resume me", 30));
    const { entries } = await pollToEnd(node.url, id);
    const after3 = await poll(node.url, id, { from: "3" });
    expect(entriesIn([after3.body!]).map((e) => e.offset)).toEqual(entries.slice(3).map((e) => e.offset));
    const both = await poll(node.url, id, { from: "1" }, { "last-event-id": "4" });
    expect(entriesIn([both.body!])[0]?.offset).toBe(5);
  });

  it("on a quiet log it waits wait_ms, then answers with no events and the same cursor; a gateway shutting down answers at once", async () => {
    // A gateway without a worker: the answer stays queued, its log holds `created` alone.
    const idle = await startNode(loadConfig({ LIFELINE_ENGINE: "memory", LIFELINE_PORT: "0", LIFELINE_LOG_LEVEL: "silent" }, {}), {
      gateway: true,
      worker: false,
    });
    const base = idle.url!;
    const id = await startGeneration(base, ask("quiet"));
    // A poll with the default wait (25 s) is held while one that asks for 300 ms comes back.
    let heldAnswered = false;
    const held = poll(base, id, { from: "1" }).finally(() => (heldAnswered = true));
    const began = Date.now();
    const quiet = await poll(base, id, { from: "1", wait_ms: "300" });
    expect(quiet).toEqual({ status: 200, body: { events: [], cursor: "1", ended: false } });
    expect(Date.now() - began).toBeGreaterThanOrEqual(290); // it held the request, as asked
    expect(heldAnswered).toBe(false); // and the wait is the one asked for, not the default

    const stopping = idle.stop();
    expect(await held).toEqual({ status: 200, body: { events: [], cursor: "1", ended: false } });
    await stopping;
  });

  it("a cursor past the end of the log gets reset first, then the log from offset 1", async () => {
    const id = await startGeneration(node.url, ask("ahead", 20));
    await pollToEnd(node.url, id);
    const { body } = await poll(node.url, id, { from: "9999" });
    expect(body?.events[0]).toEqual({ type: "reset" });
    expectExactAnswer(entriesIn([body!]), expected("ahead", 20));
  });

  it("bad input gets a clear error with a stable code", async () => {
    const id = await startGeneration(node.url, ask("bad input", 5));
    const codeOf = async (res: Promise<Response>): Promise<[number, string]> => {
      const r = await res;
      const body = (await r.json()) as { error: { code: string } };
      return [r.status, body.error.code];
    };
    const at = (query: string): Promise<Response> => fetch(new URL(`/v1/generations/${id}/poll?${query}`, node.url));
    expect(await codeOf(at("wait_ms=abc"))).toEqual([400, "invalid_request"]);
    expect(await codeOf(at("wait_ms=60001"))).toEqual([400, "invalid_request"]);
    expect(await codeOf(at("wait_ms=-1"))).toEqual([400, "invalid_request"]);
    expect(await codeOf(at("from=banana"))).toEqual([400, "invalid_cursor"]);
    expect(await codeOf(at("from=1&from=2"))).toEqual([400, "invalid_cursor"]);
    expect(await codeOf(fetch(new URL("/v1/generations/gen_doesnotexist/poll", node.url)))).toEqual([404, "generation_not_found"]);
    expect(await codeOf(fetch(new URL("/v1/generations/..%2F..%2Fetc/poll", node.url)))).toEqual([404, "generation_not_found"]);
    expect((await fetch(new URL("/healthz", node.url))).status).toBe(200);
  });
});

function entriesIn(polls: readonly PollResponse[]): Entry[] {
  const entries: Entry[] = [];
  for (const p of polls) for (const e of p.events) if (e.type === "entry") entries.push(e.entry as Entry);
  return entries;
}

function cursorsIn(polls: readonly PollResponse[]): string[] {
  const cursors: string[] = [];
  for (const p of polls) for (const e of p.events) if (e.type === "entry") cursors.push(e.cursor);
  return cursors;
}
