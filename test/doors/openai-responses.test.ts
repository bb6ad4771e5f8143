import OpenAI, { APIError } from "openai";
import type { ResponseStreamEvent } from "openai/resources/responses/responses";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GENERATION_HEADER } from "../../src/gateway/doors/openai/wire.ts";
import { startInProcess } from "../support/in-process.ts";
import { simRequest, simText } from "../support/sim-answer.ts";

/*
 * The Responses API through the official openai client: background responses, their event
 * streams from the start or after a sequence number, the SDK's stream helper, retrieve and cancel.
 */

/** The text an accumulating client holds after `events`. */
function textOf(events: readonly ResponseStreamEvent[]): string {
  return events.map((e) => (e.type === "response.output_text.delta" ? e.delta : "")).join("");
}

async function collect(stream: AsyncIterable<ResponseStreamEvent>): Promise<ResponseStreamEvent[]> {
  const events: ResponseStreamEvent[] = [];
  for await (const event of stream) events.push(event);
  return events;
}

describe("the OpenAI door's Responses API, through the official client", () => {
  let node: Awaited<ReturnType<typeof startInProcess>>;
  let client: OpenAI;

  beforeAll(async () => {
    node = await startInProcess({ LIFELINE_SIM_TOKENS_PER_SECOND: "200" });
    client = new OpenAI({ baseURL: `${node.url}/v1`, apiKey: "not-checked-on-loopback" });
  });
  afterAll(async () => {
    await node?.stop();
  });

  it("streams a background response's events in order, each numbered, ending with response.completed", async () => {
    const request = simRequest("a background response", { max_tokens: 25 });
    const { data: stream, response } = await client.responses
      .create({ model: "sim", input: "a background response", max_output_tokens: 25, background: true, stream: true })
      .withResponse();
    const events = await collect(stream);
    const id = response.headers.get(GENERATION_HEADER);
    const types = events.map((e) => e.type).filter((t) => t !== "response.output_text.delta");
    expect(types).toEqual([
      "response.created",
      "response.in_progress",
      "response.output_item.added",
      "response.content_part.added",
      "response.output_text.done",
      "response.content_part.done",
      "response.output_item.done",
      "response.completed",
    ]);
    const numbers = events.map((e) => e.sequence_number);
    expect(numbers).toEqual([...numbers].sort((a, b) => a - b));
    expect(new Set(numbers).size).toBe(numbers.length);
    expect(textOf(events)).toBe(simText(request));
    const completed = events.at(-1)!;
    expect(completed.type === "response.completed" && completed.response.id).toBe(id);
    expect(completed.type === "response.completed" && completed.response.usage?.output_tokens).toBe(25);
  });

  it("gives, after starting_after=N, exactly the events past N, the same on every read", async () => {
    const request = simRequest("read it again", { max_tokens: 20 });
    const created = await client.responses.create({ model: "sim", input: "read it again", max_output_tokens: 20, background: true });
    expect(["queued", "in_progress"]).toContain(created.status);
    const whole = await collect(await client.responses.retrieve(created.id, { stream: true }));
    expect(whole[0]!.type).toBe("response.created");
    expect(textOf(whole)).toBe(simText(request));
    for (const cut of [0, 3, Math.floor(whole.length / 2), whole.length - 2]) {
      const n = whole[cut]!.sequence_number;
      const rest = await collect(await client.responses.retrieve(created.id, { stream: true, starting_after: n }));
      expect(rest).toEqual(whole.filter((e) => e.sequence_number > n));
    }
    expect(
      await collect(await client.responses.retrieve(created.id, { stream: true, starting_after: whole.at(-1)!.sequence_number })),
    ).toEqual([]);
  });

  it("serves the SDK's responses.stream({response_id}) helper, from the start or after a number", async () => {
    const request = simRequest("the stream helper", { max_tokens: 30 });
    const created = await client.responses.create({ model: "sim", input: "the stream helper", max_output_tokens: 30, background: true });
    const helper = client.responses.stream({ response_id: created.id });
    const final = await helper.finalResponse();
    expect(final.status).toBe("completed");
    expect(final.output_text).toBe(simText(request));

    // The helper also creates: responses.stream(params) streams a new response.
    const fresh = await client.responses.stream({ model: "sim", input: "the stream helper", max_output_tokens: 30 }).finalResponse();
    expect(fresh.output_text).toBe(simText(request));

    const deltas: string[] = [];
    const after = client.responses.stream({ response_id: created.id, starting_after: 5 });
    after.on("response.output_text.delta", (event) => deltas.push(event.delta));
    expect((await after.finalResponse()).output_text).toBe(simText(request));
    expect(simText(request).endsWith(deltas.join(""))).toBe(true);
  });

  it("retrieves a response's state, and answers background: false once the answer is done", async () => {
    const request = simRequest("wait for me", { max_tokens: 15 });
    const done = await client.responses.create({
      model: "sim",
      input: [{ role: "user", content: [{ type: "input_text", text: "wait for me" }] }],
      max_output_tokens: 15,
    });
    expect(done.status).toBe("completed");
    expect(done.output_text).toBe(simText(request));
    const retrieved = await client.responses.retrieve(done.id);
    expect({ status: retrieved.status, text: retrieved.output_text }).toEqual({ status: "completed", text: simText(request) });
  });

  it("cancels a response, idempotently; its stream ends with the status cancelled", async () => {
    const slow = await client.responses.create({ model: "sim", input: "cancel me", max_output_tokens: 4000, background: true });
    const stream = await client.responses.retrieve(slow.id, { stream: true });
    const events: ResponseStreamEvent[] = [];
    for await (const event of stream) {
      events.push(event);
      if (event.type === "response.output_text.delta" && events.length === 6) {
        expect((await client.responses.cancel(slow.id)).status).toBe("cancelled");
      }
    }
    const last = events.at(-1)!;
    expect(last.type).toBe("response.incomplete");
    expect(last.type === "response.incomplete" && last.response.status).toBe("cancelled");
    expect((await client.responses.cancel(slow.id)).status).toBe("cancelled");
    expect((await client.responses.retrieve(slow.id)).status).toBe("cancelled");
    // The SDK's helper takes the cancelled response's stream to its end, and says so.
    expect((await client.responses.stream({ response_id: slow.id }).finalResponse()).status).toBe("cancelled");
    // A response that already completed is answered as it stands.
    const finished = await client.responses.create({ model: "sim", input: "too late to cancel", max_output_tokens: 3 });
    expect((await client.responses.cancel(finished.id)).status).toBe("completed");
  });

  it("honours Idempotency-Key on POST /v1/responses, and resumes an EventSource by Last-Event-ID", async () => {
    const key = `responses-key-${Date.now()}`;
    const body = { model: "sim", input: "just once", max_output_tokens: 6, background: true };
    const first = await client.responses.create(body, { headers: { "Idempotency-Key": key } });
    const again = await client.responses.create(body, { headers: { "Idempotency-Key": key } }).withResponse();
    expect(again.data.id).toBe(first.id);
    expect(again.response.headers.get("idempotent-replayed")).toBe("true");
    const conflict = (await client.responses
      .create({ ...body, max_output_tokens: 7 }, { headers: { "Idempotency-Key": key }, maxRetries: 2 })
      .then(
        () => undefined,
        (e: unknown) => e,
      )) as APIError;
    expect({ status: conflict.status, code: conflict.code, retry: conflict.headers?.get("x-should-retry") }).toEqual({
      status: 409,
      code: "idempotency_key_reused",
      retry: "false",
    });

    const whole = await collect(await client.responses.retrieve(first.id, { stream: true }));
    const n = whole[4]!.sequence_number;
    const resumed = await fetch(`${node.url}/v1/responses/${first.id}?stream=true`, { headers: { "last-event-id": String(n) } });
    const frames = (await resumed.text()).split("\n").filter((line) => line.startsWith("id: "));
    expect(frames).toEqual(whole.filter((e) => e.sequence_number > n).map((e) => `id: ${e.sequence_number}`));
  });

  it("refuses what it cannot honour, and unknown ids, each with its code", async () => {
    const refusals: [string, () => Promise<unknown>, number, string][] = [
      [
        "previous_response_id",
        () => client.responses.create({ model: "sim", input: "x", previous_response_id: "gen_x" }),
        400,
        "unsupported_parameter",
      ],
      ["tools", () => client.responses.create({ model: "sim", input: "x", tools: [{ type: "web_search" }] }), 400, "unsupported_parameter"],
      [
        "an image part",
        () =>
          client.responses.create({
            model: "sim",
            input: [{ role: "user", content: [{ type: "input_image", image_url: "https://example.com/a.png", detail: "auto" }] }],
          }),
        400,
        "unsupported_parameter",
      ],
      [
        "a tool output item",
        () => client.responses.create({ model: "sim", input: [{ type: "function_call_output", call_id: "c", output: "1" }] }),
        400,
        "unsupported_parameter",
      ],
      ["no input", () => client.responses.create({ model: "sim" }), 400, "invalid_request"],
      ["an unknown model", () => client.responses.create({ model: "gpt-nope", input: "x" }), 400, "unknown_model"],
      ["an unknown response", () => client.responses.retrieve("gen_00000000000000000000000000"), 404, "generation_not_found"],
      ["a malformed id", () => client.responses.retrieve("resp_123", { stream: true }), 404, "generation_not_found"],
      ["a cancel of nothing", () => client.responses.cancel("gen_00000000000000000000000000"), 404, "generation_not_found"],
    ];
    for (const [what, call, status, code] of refusals) {
      const error = await call().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error, what).toBeInstanceOf(APIError);
      expect({ what, status: (error as APIError).status, code: (error as APIError).code }).toEqual({ what, status, code });
    }
    const created = await client.responses.create({ model: "sim", input: "x", max_output_tokens: 2 });
    const bad = await fetch(`${node.url}/v1/responses/${created.id}?stream=true&starting_after=-3`);
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe("invalid_request");
  });
});
