import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import type { Browser, Page } from "playwright-core";
import { describe, expect, test, type TestContext } from "vitest";
import type { ChatMessage, Entry } from "../../src/core/entries.ts";
import { simTokens } from "../../src/llm/sim/sim-text.ts";
import { launchChromium } from "../support/browser.ts";
import { expectExactAnswer } from "../support/invariants.ts";
import { startLifeline, type LifelineProcess } from "../support/lifeline-process.ts";
import { entriesOf, readEvents } from "../support/sse-client.ts";
import { tempDir } from "../support/temp-dir.ts";

const ARTIFACTS = fileURLToPath(new URL("../../test-artifacts/", import.meta.url));
/** The page sends no max_tokens: 120 tokens at 60/s is a 2 s answer, long enough to interrupt. */
const SERVER_ENV = { LIFELINE_SIM_TOKENS_PER_SECOND: "60", LIFELINE_LEASE_MS: "1000" };
const STORAGE_KEY = "lifeline.chat.v1";
const ANSWER_TIMEOUT_MS = 30_000;

interface GenerationBody {
  readonly status: string;
  readonly text: string;
  readonly lastOffset: number;
  readonly attempts: number;
}

interface ShownAnswer {
  readonly id: string;
  readonly status: string;
  readonly text: string;
}

/** The uninterrupted answer of the sim model to these messages (DESIGN §5: deterministic). */
function simAnswer(messages: readonly ChatMessage[]): string {
  return simTokens({ messages }).join("");
}

/** Runs in the page before its scripts: records every change of #connection's data-state. */
function recordConnectionStates(): void {
  const states: string[] = [];
  Object.assign(window, { connectionStates: states });
  new MutationObserver((records) => {
    for (const record of records) {
      const target = record.target as Element;
      if (target.id === "connection") states.push(target.getAttribute("data-state") ?? "");
    }
  }).observe(document, { subtree: true, attributes: true, attributeFilter: ["data-state"] });
}

/** A real `lifeline start`, a real Chromium on its chat page, and cleanup (screenshot first) when the test ends. */
class ChatSession {
  server!: LifelineProcess;
  page!: Page;
  readonly pageErrors: Error[] = [];
  readonly #dataDir = tempDir("lifeline-web-");
  #browser: Browser | undefined;

  static async open(ctx: TestContext): Promise<ChatSession> {
    const session = new ChatSession();
    ctx.onTestFinished(() => session.#close(ctx.task.name));
    const [browser, server] = await Promise.allSettled([
      launchChromium(ctx),
      startLifeline("start", { ...SERVER_ENV, LIFELINE_DATA_DIR: session.#dataDir.path }),
    ]);
    if (browser.status === "fulfilled") session.#browser = browser.value;
    if (server.status === "fulfilled") session.server = server.value;
    if (browser.status === "rejected") throw browser.reason;
    if (server.status === "rejected") throw server.reason;
    const context = await browser.value.newContext();
    session.page = await context.newPage();
    session.page.on("pageerror", (error) => session.pageErrors.push(error));
    await session.page.addInitScript(recordConnectionStates);
    await session.page.goto(`${session.server.url}/`);
    return session;
  }

  /** SIGKILLs the server: no shutdown code runs, the answer's worker dies mid-answer. */
  async killServer(): Promise<void> {
    await this.server.kill();
  }

  /** A new `lifeline start` on the same data dir and port, so the page's EventSource finds it again. */
  async restartServer(): Promise<void> {
    const port = new URL(this.server.url).port;
    for (let attempt = 1; ; attempt++) {
      try {
        this.server = await startLifeline("start", { ...SERVER_ENV, LIFELINE_DATA_DIR: this.#dataDir.path, LIFELINE_PORT: port });
        return;
      } catch (error) {
        // The old socket may linger for a moment after SIGKILL.
        if (attempt >= 5) throw error;
        await sleep(300);
      }
    }
  }

  async send(text: string): Promise<void> {
    await this.page.fill("#prompt", text);
    await this.page.click("#send");
  }

  /** Waits until the `index`-th answer reaches a terminal status, and returns it. */
  async waitForEnd(index: number): Promise<ShownAnswer> {
    await this.page.waitForFunction(
      (i) => ["completed", "failed", "cancelled"].includes(document.querySelectorAll("#messages .assistant")[i]?.getAttribute("data-status") ?? ""),
      index,
      { timeout: ANSWER_TIMEOUT_MS },
    );
    return this.shown(index);
  }

  /** Waits until the `index`-th answer is streaming and shows at least `chars` characters. */
  async waitForPartialAnswer(index: number, chars: number): Promise<ShownAnswer> {
    await this.page.waitForFunction(
      ([i, min]) => {
        const answer = document.querySelectorAll("#messages .assistant")[i];
        return answer?.getAttribute("data-status") === "streaming" && (answer.querySelector(".content")?.textContent?.length ?? 0) >= min;
      },
      [index, chars] as const,
      { timeout: ANSWER_TIMEOUT_MS },
    );
    return this.shown(index);
  }

  async shown(index: number): Promise<ShownAnswer> {
    const answer = this.page.locator("#messages .assistant").nth(index);
    return {
      id: (await answer.getAttribute("data-generation")) ?? "",
      status: (await answer.getAttribute("data-status")) ?? "",
      text: (await answer.locator(".content").textContent()) ?? "",
    };
  }

  async userMessages(): Promise<string[]> {
    return this.page.locator("#messages .user .content").allTextContents();
  }

  /** Every data-state #connection took since the page (re)loaded. */
  async connectionStates(): Promise<string[]> {
    return this.page.evaluate(() => (window as unknown as { connectionStates: string[] }).connectionStates);
  }

  async generation(id: string): Promise<GenerationBody> {
    const res = await fetch(new URL(`/v1/generations/${id}`, this.server.url));
    expect(res.status).toBe(200);
    return (await res.json()) as GenerationBody;
  }

  /** The whole log of a finished generation, as SSE from offset 0. */
  async log(id: string): Promise<Entry[]> {
    const read = await readEvents(this.server.url, id, { from: "0" });
    expect(read.ended).toBe(true);
    return entriesOf(read.messages);
  }

  async #close(name: string): Promise<void> {
    try {
      if (this.page) {
        mkdirSync(ARTIFACTS, { recursive: true });
        const file = `chat-page-${name.replace(/[^a-z0-9]+/gi, "-").toLowerCase()}.png`;
        await this.page.screenshot({ path: join(ARTIFACTS, file), fullPage: true }).catch(() => undefined);
      }
      await this.#browser?.close();
      await this.server?.kill();
    } finally {
      this.#dataDir.remove();
    }
  }
}

describe("the chat page in a real browser", () => {
  test("a two-turn conversation sends the whole conversation and shows each answer byte for byte", async (ctx) => {
    const chat = await ChatSession.open(ctx);
    const question = "What does Lifeline do?";
    const followUp = "And how does a client resume?";

    await chat.send(question);
    const first = await chat.waitForEnd(0);
    expect(first.status).toBe("completed");
    const firstOnServer = await chat.generation(first.id);
    expect(firstOnServer.status).toBe("completed");
    expect(first.text).toBe(firstOnServer.text);
    expect(first.text).toBe(simAnswer([{ role: "user", content: question }]));

    await chat.send(followUp);
    const second = await chat.waitForEnd(1);
    expect(second.status).toBe("completed");
    expect(second.id).not.toBe(first.id);

    const conversation: ChatMessage[] = [
      { role: "user", content: question },
      { role: "assistant", content: first.text },
      { role: "user", content: followUp },
    ];
    const log = await chat.log(second.id);
    const created = log[0];
    expect(created?.type).toBe("created");
    expect(created?.type === "created" ? created.request.messages : undefined).toEqual(conversation);
    expect(second.text).toBe((await chat.generation(second.id)).text);
    expect(second.text).toBe(simAnswer(conversation));
    expectExactAnswer(log, second.text);

    expect(await chat.userMessages()).toEqual([question, followUp]);
    expect(await chat.connectionStates()).toEqual(["connecting", "live", "idle", "connecting", "live", "idle"]);
    expect(chat.pageErrors).toEqual([]);
  });

  test("a reload mid-answer shows the same conversation and the answer continues exactly", async (ctx) => {
    const chat = await ChatSession.open(ctx);
    const question = "Tell me about durable logs.";

    await chat.send(question);
    const partial = await chat.waitForPartialAnswer(0, 20);
    expect((await chat.generation(partial.id)).status).toBe("running");
    expect(await chat.connectionStates()).toEqual(["connecting", "live"]);
    const stored = await chat.page.evaluate((key) => JSON.parse(localStorage.getItem(key) ?? "null") as { turns: { generation?: string; status?: string; lastOffset?: number }[] }, STORAGE_KEY);
    expect(stored.turns[1]).toMatchObject({ generation: partial.id, status: "streaming" });
    expect(stored.turns[1]?.lastOffset).toBeGreaterThan(1);

    await chat.page.reload();
    const done = await chat.waitForEnd(0);
    expect(done.status).toBe("completed");
    expect(done.id).toBe(partial.id);
    const onServer = await chat.generation(done.id);
    expect(onServer.status).toBe("completed");
    expect(done.text).toBe(onServer.text);
    expect(done.text).toBe(simAnswer([{ role: "user", content: question }]));
    expectExactAnswer(await chat.log(done.id), done.text);

    expect(await chat.userMessages()).toEqual([question]);
    // After the reload the page resumed the stream it had, then went idle at the terminal entry.
    expect(await chat.connectionStates()).toEqual(["connecting", "resumed", "idle"]);
    expect(chat.pageErrors).toEqual([]);
  });

  test("Stop cancels the answer in progress and the page shows what was written before it", async (ctx) => {
    const chat = await ChatSession.open(ctx);

    await chat.send("Say something long.");
    const partial = await chat.waitForPartialAnswer(0, 20);
    await chat.page.click("#stop");
    const stopped = await chat.waitForEnd(0);
    expect(stopped.status).toBe("cancelled");
    const onServer = await chat.generation(partial.id);
    expect(onServer.status).toBe("cancelled");
    expect(stopped.text).toBe(onServer.text);
    expect(stopped.text.length).toBeGreaterThanOrEqual(partial.text.length);
    expect(simAnswer([{ role: "user", content: "Say something long." }]).startsWith(stopped.text)).toBe(true);
    expectExactAnswer(await chat.log(partial.id), stopped.text, "cancelled");
    expect(await chat.page.locator("#messages .assistant .meta").textContent()).toBe("Stopped.");
    expect(await chat.page.isDisabled("#stop")).toBe(true);
    expect(await chat.page.isEnabled("#send")).toBe(true);
    expect(chat.pageErrors).toEqual([]);
  });

  test("a server killed mid-answer and restarted on the same port: the page's answer finishes byte for byte", async (ctx) => {
    const chat = await ChatSession.open(ctx);
    const question = "What happens when the server dies?";

    await chat.send(question);
    const partial = await chat.waitForPartialAnswer(0, 20);
    await chat.killServer();
    await chat.page.waitForFunction(() => document.getElementById("connection")?.dataset.state === "reconnecting", undefined, { timeout: 10_000 });
    expect((await chat.shown(0)).status).toBe("streaming");

    await chat.restartServer();
    const done = await chat.waitForEnd(0);
    expect(done.status).toBe("completed");
    expect(done.id).toBe(partial.id);
    const onServer = await chat.generation(done.id);
    expect(onServer.status).toBe("completed");
    // The dead worker's attempt was taken over by the new process's worker.
    expect(onServer.attempts).toBe(2);
    expect(done.text).toBe(onServer.text);
    expect(done.text).toBe(simAnswer([{ role: "user", content: question }]));
    expectExactAnswer(await chat.log(done.id), done.text);

    expect(await chat.connectionStates()).toEqual(["connecting", "live", "reconnecting", "resumed", "idle"]);
    expect(chat.pageErrors).toEqual([]);
  });
});
