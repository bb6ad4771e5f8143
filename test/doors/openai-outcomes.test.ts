import OpenAI, { APIError } from "openai";
import type { ResponseStreamEvent } from "openai/resources/responses/responses";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/cli/config.ts";
import { startNode, type LifelineNode } from "../../src/cli/node.ts";
import { GENERATION_HEADER } from "../../src/gateway/doors/openai/wire.ts";
import { startSimLlm } from "../../src/sim-llm/server.ts";
import { simRequest, simText } from "../support/sim-answer.ts";
import { tempDir } from "../support/temp-dir.ts";
import { until } from "../support/waits.ts";

/*
 * How an answer that does not complete looks through the OpenAI door, with the official client:
 * a model that fails, a cancel, a gateway that shuts down mid-stream. Each is an error the client
 * throws with a stable code, or a status it reads; none looks like a finished answer.
 */

describe("the OpenAI door's answers that do not complete", () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function lifeline(config?: Record<string, unknown>, env: Record<string, string> = {}): Promise<LifelineNode & { url: string }> {
    const vars: Record<string, string> = { LIFELINE_ENGINE: "memory", LIFELINE_PORT: "0", LIFELINE_LOG_LEVEL: "silent", ...env };
    if (config) {
      const dir = tempDir();
      cleanups.push(() => dir.remove());
      vars.LIFELINE_CONFIG = join(dir.path, "models.json");
      writeFileSync(vars.LIFELINE_CONFIG, JSON.stringify(config));
    }
    const node = (await startNode(loadConfig(vars, {}), { gateway: true, worker: true })) as LifelineNode & { url: string };
    cleanups.push(() => node.stop());
    return node;
  }

  /** A client counting the requests it sends (retries included) at its fetch. */
  function openAi(url: string): { client: OpenAI; sent: () => number } {
    let sent = 0;
    const counted: typeof fetch = (input, init) => {
      sent += 1;
      return fetch(input, init);
    };
    return { client: new OpenAI({ baseURL: `${url}/v1`, apiKey: "not-checked-on-loopback", fetch: counted }), sent: () => sent };
  }

  it("a model that refuses the request: an APIError with the log's code in a stream, 502 generation_failed (not retried) otherwise, response.failed", async () => {
    const model = await startSimLlm({ tokensPerSecond: 200, fault: "error", faultStatus: 400 });
    cleanups.push(() => model.close());
    const node = await lifeline({
      providers: { refusing: { type: "openai-compatible", baseUrl: `${model.url}/v1` } },
      models: { refused: { provider: "refusing", model: "sim" } },
    });
    const { client, sent } = openAi(node.url);
    const messages = [{ role: "user" as const, content: "no" }];

    const streamed = await client.chat.completions.create({ model: "refused", messages, stream: true });
    const inStream = await (async () => {
      for await (const chunk of streamed) void chunk;
    })().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(inStream).toBeInstanceOf(APIError);
    expect((inStream as APIError).code).toBe("model_rejected");

    const before = sent();
    const waited = await client.chat.completions.create({ model: "refused", messages }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(waited).toBeInstanceOf(APIError);
    const error = waited as APIError;
    expect({ status: error.status, code: error.code, retry: error.headers?.get("x-should-retry") }).toEqual({
      status: 502,
      code: "generation_failed",
      retry: "false",
    });
    expect((error.error as { details: { error: { code: string } } }).details.error.code).toBe("model_rejected");
    expect(sent() - before).toBe(1);

    const events: ResponseStreamEvent[] = [];
    for await (const event of await client.responses.create({ model: "refused", input: "no", stream: true, background: true }))
      events.push(event);
    const last = events.at(-1)!;
    expect(last.type).toBe("response.failed");
    expect(last.type === "response.failed" && last.response.error?.code).toBe("model_rejected");
  });

  it("a cancelled answer: an APIError generation_cancelled in a chat stream, and a 409 the client does not retry when it waits", async () => {
    const node = await lifeline(undefined, { LIFELINE_SIM_TOKENS_PER_SECOND: "50" });
    const { client, sent } = openAi(node.url);
    const messages = [{ role: "user" as const, content: "stop me" }];

    const { data: stream, response } = await client.chat.completions
      .create({ model: "sim", messages, max_tokens: 2000, stream: true })
      .withResponse();
    const id = response.headers.get(GENERATION_HEADER)!;
    let text = "";
    const outcome = (async () => {
      for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
    })().then(
      () => undefined,
      (e: unknown) => e,
    );
    await until(() => text.length > 0, 30_000, "the first text");
    expect((await client.responses.cancel(id)).status).toBe("cancelled");
    const error = await outcome;
    expect(error).toBeInstanceOf(APIError);
    expect((error as APIError).code).toBe("generation_cancelled");

    const key = `cancel-${Date.now()}`;
    const before = sent();
    const waiting = client.chat.completions
      .create({ model: "sim", messages, max_tokens: 2000 }, { headers: { "Idempotency-Key": key } })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    // The same key names the waiting call's generation: cancel it.
    const replay = await fetch(`${node.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", "idempotency-key": key },
      body: JSON.stringify({ model: "sim", messages, max_tokens: 2000, stream: true }),
    });
    const waitedId = replay.headers.get(GENERATION_HEADER)!;
    await replay.body?.cancel();
    expect((await client.responses.cancel(waitedId)).status).toBe("cancelled");
    const refused = (await waiting) as APIError;
    expect({ status: refused.status, code: refused.code }).toEqual({ status: 409, code: "generation_cancelled" });
    expect(sent() - before).toBe(2); // the waiting call and the cancel: the 409 was not retried
  });

  it("a gateway that shuts down mid-stream: the client throws shutting_down instead of taking the end for the answer's", async () => {
    const node = await lifeline(undefined, { LIFELINE_SIM_TOKENS_PER_SECOND: "50" });
    const { client } = openAi(node.url);
    const request = simRequest("interrupted by a shutdown", { max_tokens: 2000 });
    const stream = await client.chat.completions.create({ model: "sim", messages: [...request.messages], max_tokens: 2000, stream: true });
    const events = await client.responses.create({
      model: "sim",
      input: "interrupted by a shutdown",
      max_output_tokens: 2000,
      stream: true,
    });
    let text = "";
    const chatOutcome = (async () => {
      for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
    })().then(
      () => undefined,
      (e: unknown) => e,
    );
    let deltas = 0;
    const responseOutcome = (async () => {
      for await (const event of events) if (event.type === "response.output_text.delta") deltas += 1;
    })().then(
      () => undefined,
      (e: unknown) => e,
    );
    await until(() => text.length > 0 && deltas > 0, 30_000, "the first text of both");
    await node.stop();
    for (const outcome of [await chatOutcome, await responseOutcome]) {
      expect(outcome).toBeInstanceOf(APIError);
      expect((outcome as APIError).code).toBe("shutting_down");
    }
    expect(simText(request).startsWith(text)).toBe(true);
  });
});
