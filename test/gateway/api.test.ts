import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { simTokens } from "../../src/llm/sim/sim-text.ts";
import { startInProcess } from "../support/in-process.ts";
import { expectExactAnswer } from "../support/invariants.ts";
import { entriesOf, postJson, readEvents, startGeneration } from "../support/sse-client.ts";

const ask = (content: string, extra: Record<string, unknown> = {}) => ({
  model: "sim",
  messages: [{ role: "user", content }],
  max_tokens: 40,
  ...extra,
});
const expected = (content: string, extra: { seed?: number; max_tokens?: number } = {}): string =>
  simTokens({ messages: [{ role: "user", content }], max_tokens: 40, ...extra }).join("");

describe("HTTP API", () => {
  let node: Awaited<ReturnType<typeof startInProcess>>;
  let url: string;
  beforeAll(async () => {
    node = await startInProcess({ LIFELINE_HEARTBEAT_MS: "100", LIFELINE_MAX_BODY_BYTES: "4096" });
    url = node.url;
  });
  afterAll(async () => {
    await node.stop();
  });

  const errorOf = async (res: Response): Promise<{ status: number; code: string }> => {
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(typeof body.error.message).toBe("string");
    return { status: res.status, code: body.error.code };
  };
  const post = (body: string, headers: Record<string, string>): Promise<Response> =>
    fetch(`${url}/v1/generations`, { method: "POST", headers, body });

  it("answers health, readiness and metrics", async () => {
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    expect(await (await fetch(`${url}/readyz`)).json()).toEqual({ status: "ready", engine: "memory" });
    const metrics = await (await fetch(`${url}/metrics`)).text();
    expect(metrics).toContain("lifeline_open_streams");
    expect(metrics).toContain("lifeline_tokens_appended_total");
    // The worker's coalescing window, at the configured 20 ms while it keeps up.
    expect(metrics).toMatch(/^lifeline_coalesce_window_ms 20$/m);
  });

  it("streams an answer as SSE: contiguous offsets, one terminal entry, the sim's exact text", async () => {
    const id = await startGeneration(url, ask("stream me"));
    const read = await readEvents(url, id);
    expect(read.status).toBe(200);
    expect(read.ended).toBe(true);
    expect(read.messages.map((m) => m.id)).toEqual(read.messages.map((_, i) => String(i + 1)));
    expectExactAnswer(entriesOf(read.messages), expected("stream me"));
    const view = (await (await fetch(`${url}/v1/generations/${id}`)).json()) as Record<string, unknown>;
    expect(view).toMatchObject({ id, status: "completed", text: expected("stream me"), attempts: 1, finishReason: "stop" });
    expect(view.lastOffset).toBe(read.messages.length);
  });

  it("an SSE client cut mid-answer and resumed with Last-Event-ID ends with exactly the uninterrupted text", async () => {
    const id = await startGeneration(url, ask("cut me", { max_tokens: 120 }));
    const first = await readEvents(url, id, { cutWhen: (m) => m.event === "delta" && Number(m.id) >= 5 });
    expect(first.ended).toBe(false);
    const lastSeen = first.messages[first.messages.length - 1]?.id ?? "0";
    const rest = await readEvents(url, id, { lastEventId: lastSeen });
    expect(rest.ended).toBe(true);
    expect(Number(rest.messages[0]?.id)).toBe(Number(lastSeen) + 1);
    expectExactAnswer(entriesOf([...first.messages, ...rest.messages]), expected("cut me", { max_tokens: 120 }));
  });

  it("resumes with ?from= as well, and Last-Event-ID wins over it", async () => {
    const id = await startGeneration(url, ask("from me"));
    const all = await readEvents(url, id);
    const viaQuery = await readEvents(url, id, { from: "3" });
    expect(viaQuery.messages.map((m) => m.id)).toEqual(all.messages.slice(3).map((m) => m.id));
    const both = await readEvents(url, id, { from: "1", lastEventId: "4" });
    expect(both.messages[0]?.id).toBe("5");
  });

  it("answers 204 to a cursor already at the terminal entry", async () => {
    const id = await startGeneration(url, ask("done"));
    const all = await readEvents(url, id);
    const last = all.messages[all.messages.length - 1]?.id ?? "";
    const again = await readEvents(url, id, { lastEventId: last });
    expect(again.status).toBe(204);
    expect(again.messages).toEqual([]);
  });

  it("a cursor past the end of the log gets reset and a replay from the start", async () => {
    const id = await startGeneration(url, ask("ahead"));
    await readEvents(url, id);
    const read = await readEvents(url, id, { lastEventId: "9999" });
    expect(read.messages[0]?.event).toBe("reset");
    expect(read.messages[0]?.id).toBe("0");
    expectExactAnswer(entriesOf(read.messages), expected("ahead"));
  });

  it("sends heartbeats while the answer is quiet", async () => {
    const slow = await startInProcess({ LIFELINE_HEARTBEAT_MS: "100", LIFELINE_SIM_TOKENS_PER_SECOND: "4" });
    try {
      const id = await startGeneration(slow.url, ask("slow", { max_tokens: 3 }));
      const read = await readEvents(slow.url, id);
      expect(read.pings).toBeGreaterThanOrEqual(3);
      expectExactAnswer(entriesOf(read.messages), expected("slow", { max_tokens: 3 }));
    } finally {
      await slow.stop();
    }
  });

  it("GET /timeline replays the log into its calls and steps, up to any entry with ?until=", async () => {
    const id = await startGeneration(url, ask("timeline me"));
    await readEvents(url, id);
    const res = await fetch(`${url}/v1/generations/${id}/timeline`);
    expect(res.status).toBe(200);
    const t = (await res.json()) as {
      status: string;
      text: string;
      lastOffset: number;
      attempts: { endedBy: string; deltas: number }[];
      steps: { type: string }[];
    };
    expect(t).toMatchObject({ status: "completed", text: expected("timeline me"), retries: 0, takeovers: 0 });
    expect(t.attempts).toHaveLength(1);
    expect(t.attempts[0]?.endedBy).toBe("completed");
    expect(t.steps.map((step) => step.type)).toEqual(["created", "started", ...t.steps.slice(2, -1).map(() => "delta"), "completed"]);
    const early = (await (await fetch(`${url}/v1/generations/${id}/timeline?until=2`)).json()) as {
      status: string;
      lastOffset: number;
      text: string;
    };
    expect(early).toMatchObject({ status: "running", lastOffset: 2, text: "" });
    for (const bad of ["0", "-1", "x", "1.5"]) {
      const refused = await fetch(`${url}/v1/generations/${id}/timeline?until=${bad}`);
      expect(await errorOf(refused)).toEqual({ status: 400, code: "invalid_request" });
    }
    const unknown = id.slice(0, -1) + (id.endsWith("0") ? "1" : "0"); // well formed, never created
    expect(await errorOf(await fetch(`${url}/v1/generations/${unknown}/timeline`))).toEqual({ status: 404, code: "generation_not_found" });
    expect(await errorOf(await fetch(`${url}/v1/generations/gen_doesnotexist/timeline`))).toEqual({
      status: 404,
      code: "generation_not_found",
    });
  });

  it("an Idempotency-Key makes a retried POST return the same generation", async () => {
    const a = await postJson(url, "/v1/generations", ask("once"), { "idempotency-key": "key-1" });
    const b = await postJson(url, "/v1/generations", ask("once"), { "idempotency-key": "key-1" });
    expect(a.status).toBe(201);
    expect(b.status).toBe(201);
    expect((b.body as { id: string }).id).toBe((a.body as { id: string }).id);
    expect(b.headers.get("idempotent-replayed")).toBe("true");
    const c = await postJson(url, "/v1/generations", ask("twice"), { "idempotency-key": "key-1" });
    expect(c.status).toBe(409);
    expect(c.body).toMatchObject({ error: { code: "idempotency_key_reused" } });
    const bad = await postJson(url, "/v1/generations", ask("x"), { "idempotency-key": "has space" });
    expect(bad.body).toMatchObject({ error: { code: "invalid_header" } });
  });

  it("cancel stops the answer and ends the log with cancelled", async () => {
    const id = await startGeneration(url, ask("stop me", { max_tokens: 2000 }));
    const first = await readEvents(url, id, { cutWhen: (m) => m.event === "delta" });
    expect(first.ended).toBe(false);
    const res = await postJson(url, `/v1/generations/${id}/cancel`, {});
    expect(res.status).toBe(202);
    const all = await readEvents(url, id);
    const entries = entriesOf(all.messages);
    expect(entries.map((e) => e.offset)).toEqual(entries.map((_, i) => i + 1));
    expect(entries.filter((e) => e.type === "cancelled" || e.type === "completed" || e.type === "failed").map((e) => e.type)).toEqual([
      "cancelled",
    ]);
    const view = (await (await fetch(`${url}/v1/generations/${id}`)).json()) as { status: string; lastOffset: number };
    expect(view.status).toBe("cancelled");
    await new Promise((r) => setTimeout(r, 200));
    const later = (await (await fetch(`${url}/v1/generations/${id}`)).json()) as { lastOffset: number };
    expect(later.lastOffset).toBe(view.lastOffset); // the worker wrote nothing after the cancel
    expect((await postJson(url, `/v1/generations/${id}/cancel`, {})).status).toBe(202);
    const done = await startGeneration(url, ask("finish first", { max_tokens: 2 }));
    await readEvents(url, done);
    const late = await postJson(url, `/v1/generations/${done}/cancel`, {});
    expect(late.status).toBe(409);
    expect(late.body).toMatchObject({ error: { code: "already_finished" } });
  });

  describe("bad input gets a clear error with a stable code, and the process stays up", () => {
    it.each([
      ["text/plain body", "hello", { "content-type": "text/plain" }, 415, "unsupported_media_type"],
      ["no content type", JSON.stringify(ask("x")), {}, 415, "unsupported_media_type"],
      ["form body", "a=b", { "content-type": "application/x-www-form-urlencoded" }, 415, "unsupported_media_type"],
      ["malformed JSON", '{"model":', { "content-type": "application/json" }, 400, "invalid_json"],
      ["empty JSON body", "", { "content-type": "application/json" }, 400, "invalid_json"],
      ["a JSON array", "[]", { "content-type": "application/json" }, 400, "invalid_request"],
      [
        "prototype poisoning",
        '{"__proto__":{"x":1},"model":"sim","messages":[]}',
        { "content-type": "application/json" },
        400,
        "invalid_json",
      ],
      ["no messages", JSON.stringify({ model: "sim", messages: [] }), { "content-type": "application/json" }, 400, "invalid_request"],
      [
        "a bad role",
        JSON.stringify({ model: "sim", messages: [{ role: "robot", content: "x" }] }),
        { "content-type": "application/json" },
        400,
        "invalid_request",
      ],
      [
        "max_tokens as a string",
        JSON.stringify(ask("x", { max_tokens: "10" })),
        { "content-type": "application/json" },
        400,
        "invalid_request",
      ],
      ["an unknown field", JSON.stringify(ask("x", { stream: true })), { "content-type": "application/json" }, 400, "invalid_request"],
      ["an unknown model", JSON.stringify(ask("x", { model: "gpt-nope" })), { "content-type": "application/json" }, 400, "unknown_model"],
      ["a body over the limit", JSON.stringify(ask("x".repeat(5000))), { "content-type": "application/json" }, 413, "body_too_large"],
    ])("%s", async (_name, body, headers, status, code) => {
      expect(await errorOf(await post(body, headers as Record<string, string>))).toEqual({ status, code });
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
    });

    it("schema errors name the field", async () => {
      const res = await post(JSON.stringify({ model: "sim", messages: [{ role: "user", content: 5 }] }), {
        "content-type": "application/json",
      });
      const body = (await res.json()) as { error: { details: { path: string }[] } };
      expect(body.error.details.map((d) => d.path)).toContain("messages.0.content");
    });

    it("unknown ids, unknown routes and bad cursors", async () => {
      expect(await errorOf(await fetch(`${url}/v1/generations/gen_00000000000000000000000000`))).toEqual({
        status: 404,
        code: "generation_not_found",
      });
      expect(await errorOf(await fetch(`${url}/v1/generations/..%2F..%2Fetc`))).toEqual({ status: 404, code: "generation_not_found" });
      expect(await errorOf(await fetch(`${url}/v1/generations/nope/events`))).toEqual({ status: 404, code: "generation_not_found" });
      expect(await errorOf(await fetch(`${url}/v1/nothing`))).toEqual({ status: 404, code: "not_found" });
      const id = await startGeneration(url, ask("cursor"));
      for (const cursor of ["-1", "abc", "1.5", "99999999999999999999", "1:2:3", " "]) {
        const res = await fetch(`${url}/v1/generations/${id}/events?from=${encodeURIComponent(cursor)}`);
        expect(await errorOf(res)).toEqual({ status: 400, code: "invalid_cursor" });
      }
      expect(await errorOf(await fetch(`${url}/v1/generations/${id}/events?from=1&from=2`))).toEqual({
        status: 400,
        code: "invalid_cursor",
      });
      const viaHeader = await fetch(`${url}/v1/generations/${id}/events`, { headers: { "last-event-id": "x\u00e9" } });
      expect(await errorOf(viaHeader)).toEqual({ status: 400, code: "invalid_cursor" });
      expect(await errorOf(await fetch(`${url}/v1/generations/nope/cancel`, { method: "POST" }))).toEqual({
        status: 404,
        code: "generation_not_found",
      });
    });
  });

  it("counts resumes and open streams in /metrics", async () => {
    const text = await (await fetch(`${url}/metrics`)).text();
    expect(Number(/^lifeline_resumes_total (\d+)/m.exec(text)?.[1])).toBeGreaterThanOrEqual(3);
    expect(Number(/^lifeline_answers_finished_total\{outcome="completed"\} (\d+)/m.exec(text)?.[1])).toBeGreaterThanOrEqual(5);
    expect(/^lifeline_open_streams (\d+)/m.exec(text)?.[1]).toBe("0");
  });
});
