import OpenAI from "openai";
import type { ResponseStreamEvent } from "openai/resources/responses/responses";
import { afterEach, describe, expect, it } from "vitest";
import type { Entry } from "../../src/core/entries.ts";
import { TextFold } from "../../src/core/fold.ts";
import { GENERATION_HEADER } from "../../src/gateway/doors/openai/wire.ts";
import { expectExactAnswer } from "../support/invariants.ts";
import { useLifelineProcesses, type StartLifeline } from "../support/lifeline-processes.ts";
import { simRequest, simText } from "../support/sim-answer.ts";
import { entriesOf, readEvents } from "../support/sse-client.ts";
import { startTcpProxy, type TcpProxy } from "../support/tcp-proxy.ts";
import { tempDir } from "../support/temp-dir.ts";
import { until } from "../support/waits.ts";

/*
 * The OpenAI door under failure, with the official client: a gateway and workers as separate
 * processes on one sqlite data directory. A worker is SIGKILLed mid-answer and another takes the
 * answer over; a client's connection is cut mid-answer and it resumes (the Responses API with
 * starting_after, a chat completion through the native API). Every client ends with the text of
 * the uninterrupted run, byte for byte.
 */

const TOKENS = 80;

interface Fleet {
  readonly gatewayUrl: string;
  /** A TCP proxy in front of the gateway: connections through it can be cut. */
  readonly proxy: TcpProxy;
  readonly proxyUrl: string;
  /** SIGKILLs the worker serving the answer and starts another on the same data directory. */
  killWorker(): Promise<void>;
}

async function startFleet(start: StartLifeline, cleanups: (() => Promise<void> | void)[]): Promise<Fleet> {
  const data = tempDir();
  cleanups.push(() => data.remove());
  const env = { LIFELINE_DATA_DIR: data.path, LIFELINE_LEASE_MS: "1500", LIFELINE_SIM_TOKENS_PER_SECOND: "20" };
  const gateway = await start("gateway", env);
  const victim = await start("worker", { ...env, LIFELINE_WORKER_NAME: "victim" });
  const proxy = await startTcpProxy(Number(new URL(gateway.url).port));
  cleanups.push(() => proxy.close());
  return {
    gatewayUrl: gateway.url,
    proxy,
    proxyUrl: `http://127.0.0.1:${proxy.port}`,
    killWorker: async () => {
      await victim.kill();
      await start("worker", { ...env, LIFELINE_WORKER_NAME: "rescuer" });
    },
  };
}

/** An official client; `marker` goes in a header of each request, so the proxy can find its connection. */
function openAi(baseUrl: string, marker = "direct"): OpenAI {
  return new OpenAI({
    baseURL: `${baseUrl}/v1`,
    apiKey: "not-checked-on-loopback",
    maxRetries: 0,
    defaultHeaders: { "x-test-client": marker },
  });
}

/** The whole log, and a check that a worker was killed mid-answer: two attempts, text written by both. */
async function expectTakenOver(gatewayUrl: string, id: string, expected: string): Promise<void> {
  const entries = entriesOf((await readEvents(gatewayUrl, id)).messages);
  expectExactAnswer(entries, expected);
  const starts = entries.filter((e): e is Extract<Entry, { type: "started" }> => e.type === "started");
  expect(starts.map((e) => e.worker)).toEqual(["victim", "rescuer"]);
  const deltasBy = (attempt: number): number => entries.filter((e) => e.type === "delta" && e.attempt === attempt).length;
  expect(deltasBy(starts[0]!.attempt)).toBeGreaterThan(0);
  expect(deltasBy(starts[1]!.attempt)).toBeGreaterThan(0);
}

function deltaText(events: readonly ResponseStreamEvent[]): string {
  return events.map((e) => (e.type === "response.output_text.delta" ? e.delta : "")).join("");
}

describe("the OpenAI door with a worker killed and a connection cut mid-answer", () => {
  const start = useLifelineProcesses();
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it("chat.completions: a stream and a waiting call read through the takeover, a stream cut off resumes through the native API; all end with the uninterrupted text", async () => {
    const fleet = await startFleet(start, cleanups);
    const request = simRequest("a chat answer that outlives its worker", { max_tokens: TOKENS });
    const expected = simText(request);
    const body = { model: "sim", messages: [...request.messages], max_tokens: TOKENS, stream: true as const };
    const key = `chat-failure-${Date.now()}`;

    // A reads on the gateway directly; B asks the same (the same Idempotency-Key) through the proxy.
    const { data: streamA, response } = await openAi(fleet.gatewayUrl)
      .chat.completions.create(body, { headers: { "Idempotency-Key": key } })
      .withResponse();
    const id = response.headers.get(GENERATION_HEADER)!;
    let textA = "";
    const readA = (async () => {
      for await (const chunk of streamA) textA += chunk.choices[0]?.delta.content ?? "";
    })();
    await until(() => textA.length >= 20, 30_000, "A's first text");
    // W waits for the same answer without streaming (stream: false, the same key).
    const waited = openAi(fleet.gatewayUrl).chat.completions.create({ ...body, stream: false }, { headers: { "Idempotency-Key": key } });

    const streamB = await openAi(fleet.proxyUrl, "chat-client-b").chat.completions.create(body, { headers: { "Idempotency-Key": key } });
    let textB = "";
    let chunkId: string | undefined;
    const readB = (async () => {
      for await (const chunk of streamB) {
        chunkId = chunk.id;
        textB += chunk.choices[0]?.delta.content ?? "";
      }
    })().then(
      () => "ended",
      () => "cut",
    );
    await until(() => textB.length > textA.length - 5 && textB.length > 0, 30_000, "B caught up");
    expect(fleet.proxy.cut("chat-client-b")).toBe(1);
    expect(await readB).toBe("cut");
    expect(textB.length).toBeLessThan(expected.length);

    await fleet.killWorker();
    await readA;
    expect(textA).toBe(expected);
    const completion = await waited;
    expect({ id: completion.id, content: completion.choices[0]!.message.content }).toEqual({ id, content: expected });

    // B names the generation by the chunks' id, and reads the answer on through the native API.
    expect(chunkId).toBe(id);
    const fold = new TextFold();
    for (const entry of entriesOf((await readEvents(fleet.gatewayUrl, chunkId!)).messages)) fold.apply(entry);
    expect(fold.text.startsWith(textB)).toBe(true);
    expect(textB + fold.text.slice(textB.length)).toBe(expected);
    await expectTakenOver(fleet.gatewayUrl, id, expected);
  });

  it("Responses streams: created, retrieved and the stream helper read through the takeover; those cut off resume after their last number", async () => {
    const fleet = await startFleet(start, cleanups);
    const request = simRequest("a response that outlives its worker", { max_tokens: TOKENS });
    const expected = simText(request);
    const direct = openAi(fleet.gatewayUrl);

    // A creates the response through the proxy, and will be cut off.
    const body = {
      model: "sim",
      input: "a response that outlives its worker",
      max_output_tokens: TOKENS,
      background: true,
      stream: true as const,
    };
    const key = `responses-failure-${Date.now()}`;
    const streamA = await openAi(fleet.proxyUrl, "responses-client-a").responses.create(body, { headers: { "Idempotency-Key": key } });
    const eventsA: ResponseStreamEvent[] = [];
    const readA = (async () => {
      for await (const event of streamA) eventsA.push(event);
    })().then(
      () => "ended",
      () => "cut",
    );
    await until(() => deltaText(eventsA).length >= 10, 30_000, "A's first text");
    const first = eventsA[0]!;
    const id = first.type === "response.created" ? first.response.id : "";

    // B retrieves the stream from the start, C reads with the SDK's helper: both directly.
    const eventsB: ResponseStreamEvent[] = [];
    const readB = (async () => {
      for await (const event of await direct.responses.retrieve(id, { stream: true })) eventsB.push(event);
    })();
    const finalC = direct.responses.stream({ response_id: id }).finalResponse();
    // E creates the same response again (the same key), directly: its stream is the same one.
    const eventsE: ResponseStreamEvent[] = [];
    const readE = (async () => {
      for await (const event of await direct.responses.create(body, { headers: { "Idempotency-Key": key } })) eventsE.push(event);
    })();
    // D reads with the helper through the proxy, and will be cut off too.
    const eventsD: ResponseStreamEvent[] = [];
    const helperD = openAi(fleet.proxyUrl, "responses-client-d").responses.stream({ response_id: id });
    helperD.on("event", (event) => eventsD.push(event));
    const readD = helperD.done().then(
      () => "ended",
      () => "cut",
    );
    await until(() => deltaText(eventsD).length >= 10, 30_000, "D's first text");

    expect(fleet.proxy.cut("responses-client-a")).toBe(1);
    expect(fleet.proxy.cut("responses-client-d")).toBe(1);
    expect(await readA).toBe("cut");
    expect(await readD).toBe("cut");
    expect(deltaText(eventsA).length).toBeLessThan(expected.length);
    await fleet.killWorker();

    // A resumes after the last number it got; D asks the helper for the rest after its own.
    const lastA = eventsA.at(-1)!.sequence_number;
    for await (const event of await direct.responses.retrieve(id, { stream: true, starting_after: lastA })) eventsA.push(event);
    const lastD = eventsD.at(-1)!.sequence_number;
    const resumedD = direct.responses.stream({ response_id: id, starting_after: lastD });
    resumedD.on("event", (event) => eventsD.push(event));
    const finalD = await resumedD.finalResponse();

    await Promise.all([readB, readE]);
    expect(deltaText(eventsE)).toBe(expected);
    expect(deltaText(eventsA)).toBe(expected);
    expect(eventsA.at(-1)!.type).toBe("response.completed");
    expect(deltaText(eventsB)).toBe(expected);
    expect((await finalC).output_text).toBe(expected);
    expect(deltaText(eventsD)).toBe(expected);
    expect(finalD.output_text).toBe(expected);
    // Every reader saw the same events under the same numbers.
    const numbered = (events: readonly ResponseStreamEvent[]): string[] => events.map((e) => `${e.sequence_number}:${e.type}`);
    expect(numbered(eventsA)).toEqual(numbered(eventsB));
    expect(numbered(eventsD)).toEqual(numbered(eventsB));
    expect(numbered(eventsE)).toEqual(numbered(eventsB));
    await expectTakenOver(fleet.gatewayUrl, id, expected);
  });
});
