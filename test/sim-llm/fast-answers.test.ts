import { once } from "node:events";
import { request, type IncomingMessage } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import type { ChatMessage } from "../../src/core/entries.ts";
import { SseParser, type SseMessage } from "../../src/core/wire.ts";
import { simTokens } from "../../src/llm/sim/sim-text.ts";
import { parseSimLlmFlags } from "../../src/sim-llm/flags.ts";
import { SimLlmOptionsError } from "../../src/sim-llm/options.ts";
import { startSimLlm, type SimLlm } from "../../src/sim-llm/server.ts";
import { until } from "../support/waits.ts";

/** The longest answer sim-llm accepts: about 18 MB of OpenAI chunks, far more than the kernel's socket buffers hold. */
const LONG = 100_000;
const messages: ChatMessage[] = [{ role: "user", content: "Stream it as fast as I read" }];
const longBody = { model: "sim", messages, seed: 11, max_tokens: LONG, stream: true };
const longText = simTokens(longBody).join("");

const running: SimLlm[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((sim) => sim.close()));
});

async function fastSim(): Promise<SimLlm> {
  const sim = await startSimLlm({ tokensPerSecond: "max" });
  running.push(sim);
  return sim;
}

/** A chat-completions request over node:http, whose response a test can pause and resume. */
async function open(url: string, body: object): Promise<IncomingMessage> {
  const req = request(`${url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "application/json" } });
  req.end(JSON.stringify(body));
  const [res] = (await once(req, "response")) as [IncomingMessage];
  expect(res.statusCode).toBe(200);
  return res;
}

/** Everything the response still has to give, from where it stands, as SSE messages. */
async function readToEnd(res: IncomingMessage, parser = new SseStream()): Promise<SseStream> {
  res.setEncoding("utf8");
  for await (const chunk of res as AsyncIterable<string>) parser.push(chunk);
  return parser;
}

class SseStream {
  readonly messages: SseMessage[] = [];
  readonly #parser = new SseParser((message) => this.messages.push(message));
  push(text: string): void {
    this.#parser.push(text);
  }
  /** The content of every token chunk, in order; `[DONE]` and the role chunk left out. */
  tokens(): string[] {
    return this.messages
      .filter((m) => m.data !== "[DONE]")
      .map((m) => JSON.parse(m.data) as { choices: { delta: { role?: string; content?: string } }[] })
      .filter((chunk) => chunk.choices[0]?.delta.content !== undefined && chunk.choices[0].delta.role === undefined)
      .map((chunk) => chunk.choices[0]?.delta.content ?? "");
  }
  done(): number {
    return this.messages.filter((m) => m.data === "[DONE]").length;
  }
}

describe("sim-llm at --tokens-per-second max: as fast as the client reads, never faster", () => {
  it("a client that stops reading holds the answer back: the server buffers a bounded amount and answers others; all of it arrives once reading resumes", async () => {
    const sim = await fastSim();
    const res = await open(sim.url, longBody);
    const stream = new SseStream();
    res.setEncoding("utf8");
    const [first] = (await once(res, "data")) as [string];
    stream.push(first);
    res.pause();

    // The server writes until the socket and the kernel's buffers are full, then waits.
    let last = -1;
    let unchanged = 0;
    await until(() => {
      const sent = sim.stats().tokensSent;
      unchanged = sent === last ? unchanged + 1 : 0;
      last = sent;
      return unchanged >= 10;
    });
    const held = sim.stats();
    expect(held).toMatchObject({ openStreams: 1, completed: 0 });
    expect(held.tokensSent).toBeLessThan(LONG / 2);
    expect(held.bufferedBytes).toBeGreaterThan(0); // waiting on the socket, not done
    expect(held.bufferedBytes).toBeLessThanOrEqual(1024 * 1024); // the rest of the 18 MB was never written

    // A held answer holds up no other: a second one streams whole meanwhile.
    const short = await readToEnd(await open(sim.url, { ...longBody, max_tokens: 30 }));
    expect(short.tokens().join("")).toBe(simTokens({ ...longBody, max_tokens: 30 }).join(""));
    expect(sim.stats()).toMatchObject({ completed: 1, openStreams: 1, tokensSent: held.tokensSent + 30 });

    await readToEnd(res, stream);
    const tokens = stream.tokens();
    expect(tokens).toHaveLength(LONG);
    expect(tokens.join("")).toBe(longText);
    expect(stream.done()).toBe(1);
    await until(() => sim.stats().openStreams === 0);
    expect(sim.stats()).toMatchObject({ completed: 2, tokensSent: LONG + 30, bufferedBytes: 0, abortedByClient: 0 });
  });

  it("a long answer streaming at full speed yields to others: a short answer asked meanwhile ends first", async () => {
    const sim = await fastSim();
    const long = await open(sim.url, longBody);
    const reading = readToEnd(long);
    const short = await readToEnd(await open(sim.url, { ...longBody, max_tokens: 30 }));
    expect(short.tokens()).toHaveLength(30);
    // Had the long answer been written in one go, it would have ended before the short one was read.
    expect(sim.stats()).toMatchObject({ completed: 1, openStreams: 1 });
    expect((await reading).tokens().join("")).toBe(longText);
  });

  it("a client that goes away mid-answer ends it: nothing more is written", async () => {
    const sim = await fastSim();
    const res = await open(sim.url, longBody);
    await once(res, "data");
    res.destroy();
    await until(() => sim.stats().abortedByClient === 1);
    const sent = sim.stats().tokensSent;
    expect(sent).toBeLessThan(LONG);
    expect(sim.stats()).toMatchObject({ openStreams: 0, completed: 0, bufferedBytes: 0 });
  });

  it("reads max from the flag and the environment, and refuses any other word", () => {
    expect(parseSimLlmFlags(["--tokens-per-second", "max"], {}).tokensPerSecond).toBe("max");
    expect(parseSimLlmFlags([], { LIFELINE_SIM_TOKENS_PER_SECOND: "max" }).tokensPerSecond).toBe("max");
    expect(parseSimLlmFlags(["--tokens-per-second", "250"], {}).tokensPerSecond).toBe(250);
    expect(() => parseSimLlmFlags(["--tokens-per-second", "fast"], {})).toThrow(SimLlmOptionsError);
    expect(() => parseSimLlmFlags(["--tokens-per-second", "fast"], {})).toThrow(/--tokens-per-second = "fast": .*or max/);
  });
});
