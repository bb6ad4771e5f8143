import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { describe, expect, test, type TestContext } from "vitest";
import type { ChatMessage, Entry } from "../../src/core/entries.ts";
import { simTokens } from "../../src/llm/sim/sim-text.ts";
import { startBlockingProxy, type BlockingProxy, type BlockingProxyOptions } from "../client/support/blocking-proxy.ts";
import { launchChromium } from "../support/browser.ts";
import { expectExactAnswer } from "../support/invariants.ts";
import { startLifeline, type LifelineProcess } from "../../src/chaos/lifeline-process.ts";
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

/** One browser tab on the chat page: what it shows and which connection states it went through. */
class ChatTab {
  readonly pageErrors: Error[] = [];

  constructor(readonly page: Page) {
    page.on("pageerror", (error) => this.pageErrors.push(error));
  }

  /** A new tab of `context` (same localStorage as its other tabs) on the chat page at `url`. */
  static async openIn(context: BrowserContext, url: string): Promise<ChatTab> {
    const tab = new ChatTab(await context.newPage());
    await tab.load(url);
    return tab;
  }

  /** Opens the chat page, recording #connection's states from before its scripts run. */
  async load(url: string): Promise<void> {
    await this.page.addInitScript(recordConnectionStates);
    await this.page.goto(`${url}/`);
  }

  async send(text: string): Promise<void> {
    await this.page.fill("#prompt", text);
    await this.page.click("#send");
  }

  /** Waits until the `index`-th answer reaches a terminal status, and returns it. */
  async waitForEnd(index: number): Promise<ShownAnswer> {
    await this.page.waitForFunction(
      (i) =>
        ["completed", "failed", "cancelled"].includes(
          document.querySelectorAll("#messages .assistant")[i]?.getAttribute("data-status") ?? "",
        ),
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

  async waitForConnectionState(state: string, timeout = 10_000): Promise<void> {
    await this.page.waitForFunction((wanted) => document.getElementById("connection")?.dataset.state === wanted, state, { timeout });
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

  async screenshot(file: string): Promise<void> {
    mkdirSync(ARTIFACTS, { recursive: true });
    await this.page.screenshot({ path: join(ARTIFACTS, file), fullPage: true }).catch(() => undefined);
  }
}

/** A real `lifeline start`, a real Chromium on its chat page, and cleanup (screenshots first) when the test ends. */
class ChatSession extends ChatTab {
  server!: LifelineProcess;
  readonly context: BrowserContext;
  /** Tabs opened after the first one. */
  readonly otherTabs: ChatTab[] = [];
  readonly #dataDir: ReturnType<typeof tempDir>;

  private constructor(page: Page, server: LifelineProcess, dataDir: ReturnType<typeof tempDir>) {
    super(page);
    this.context = page.context();
    this.server = server;
    this.#dataDir = dataDir;
  }

  /** `network`: the page reaches the server through a proxy that blocks what it says, as a restrictive network does. */
  static async open(ctx: TestContext, network?: BlockingProxyOptions): Promise<ChatSession & { proxy?: BlockingProxy }> {
    const dataDir = tempDir("lifeline-web-");
    let browser: Browser | undefined;
    let server: LifelineProcess | undefined;
    let proxy: BlockingProxy | undefined;
    const opened: { session?: ChatSession } = {};
    ctx.onTestFinished(async () => {
      try {
        if (opened.session) await opened.session.#screenshots(ctx.task.name);
        await browser?.close();
        await proxy?.close();
        // The session's server, which a test may have restarted, else the one that started.
        await (opened.session?.server ?? server)?.kill();
      } finally {
        dataDir.remove();
      }
    });
    const [launched, started] = await Promise.allSettled([
      launchChromium(ctx),
      startLifeline("start", { ...SERVER_ENV, LIFELINE_DATA_DIR: dataDir.path }),
    ]);
    if (launched.status === "fulfilled") browser = launched.value;
    if (started.status === "fulfilled") server = started.value;
    if (launched.status === "rejected") throw launched.reason;
    if (started.status === "rejected") throw started.reason;
    const page = await (await launched.value.newContext()).newPage();
    const session = new ChatSession(page, started.value, dataDir);
    opened.session = session;
    if (network) proxy = await startBlockingProxy(Number(new URL(started.value.url).port), network);
    await session.load(proxy?.url ?? started.value.url);
    return Object.assign(session, proxy ? { proxy } : {});
  }

  /** Another tab in the same browser context: it shares the first tab's localStorage. */
  async openTab(): Promise<ChatTab> {
    const tab = await ChatTab.openIn(this.context, this.server.url);
    this.otherTabs.push(tab);
    return tab;
  }

  /** SIGKILLs the server: no shutdown code runs, the answer's worker dies mid-answer. */
  async killServer(): Promise<void> {
    await this.server.kill();
  }

  /** A new `lifeline start` on the same data dir and port, so the page's client finds it again. */
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

  async generation(id: string): Promise<GenerationBody> {
    const res = await fetch(new URL(`/v1/generations/${id}`, this.server.url));
    expect(res.status).toBe(200);
    return (await res.json()) as GenerationBody;
  }

  /**
   * Waits for answer `index` to end and checks it completed as generation `id` with exactly the
   * uninterrupted answer to `question`: on the page, on the server and in the log.
   */
  async expectExactEnd(index: number, id: string, question: string): Promise<{ done: ShownAnswer; onServer: GenerationBody }> {
    const done = await this.waitForEnd(index);
    expect(done.status).toBe("completed");
    expect(done.id).toBe(id);
    const onServer = await this.generation(done.id);
    expect(onServer.status).toBe("completed");
    expect(done.text).toBe(onServer.text);
    expect(done.text).toBe(simAnswer([{ role: "user", content: question }]));
    expectExactAnswer(await this.log(done.id), done.text);
    return { done, onServer };
  }

  /** The whole log of a finished generation, as SSE from offset 0. */
  async log(id: string): Promise<Entry[]> {
    const read = await readEvents(this.server.url, id, { from: "0" });
    expect(read.ended).toBe(true);
    return entriesOf(read.messages);
  }

  async #screenshots(name: string): Promise<void> {
    const base = `chat-page-${name.replace(/[^a-z0-9]+/gi, "-").toLowerCase()}`;
    await this.screenshot(`${base}.png`);
    for (const [i, tab] of this.otherTabs.entries()) await tab.screenshot(`${base}-tab-${i + 2}.png`);
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
    const stored = await chat.page.evaluate(
      (key) =>
        JSON.parse(localStorage.getItem(key) ?? "null") as { turns: { generation?: string; status?: string; lastOffset?: number }[] },
      STORAGE_KEY,
    );
    expect(stored.turns[1]).toMatchObject({ generation: partial.id, status: "streaming" });
    expect(stored.turns[1]?.lastOffset).toBeGreaterThan(1);

    await chat.page.reload();
    await chat.expectExactEnd(0, partial.id, question);

    expect(await chat.userMessages()).toEqual([question]);
    // After the reload the page resumed the stream it had, then went idle at the terminal entry.
    expect(await chat.connectionStates()).toEqual(["connecting", "resumed", "idle"]);
    expect(chat.pageErrors).toEqual([]);
  });

  test("where the network lets neither event streams nor WebSockets through, the answer arrives over long-poll, exact", async (ctx) => {
    const chat = await ChatSession.open(ctx, { eventStreams: "refuse", refuseWebSockets: true });
    const question = "Which way did this answer come?";

    await chat.send(question);
    // Finding the way through takes a few attempts with backoff: the answer may be over by then.
    const { id } = await chat.waitForEnd(0);
    await chat.expectExactEnd(0, id, question);

    expect(await chat.page.locator("#connection").getAttribute("data-transport")).toBe("long-poll");
    expect(chat.proxy?.seen.events).toBe(1); // left at the proxy's first refusal
    expect(chat.proxy?.seen.upgrade).toBe(3); // three WebSockets that could not open
    expect(chat.proxy?.seen.poll).toBeGreaterThan(0);

    // The next answer goes straight to long-poll, and streams over it: shown in part, then whole.
    const pollsBefore = chat.proxy?.seen.poll ?? 0;
    const followUp = "And the next one?";
    await chat.send(followUp);
    const partial = await chat.waitForPartialAnswer(1, 20);
    const second = await chat.waitForEnd(1);
    expect(second.id).toBe(partial.id);
    expect(second.text).toBe((await chat.generation(second.id)).text);
    expectExactAnswer(await chat.log(second.id), second.text);
    expect(chat.proxy?.seen.poll).toBeGreaterThan(pollsBefore + 1);
    expect([chat.proxy?.seen.events, chat.proxy?.seen.upgrade]).toEqual([1, 3]);
    expect(await chat.connectionStates()).toEqual(["connecting", "live", "idle", "connecting", "live", "idle"]);
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
    await chat.page.waitForFunction(() => document.getElementById("connection")?.dataset.state === "reconnecting", undefined, {
      timeout: 10_000,
    });
    expect((await chat.shown(0)).status).toBe("streaming");

    await chat.restartServer();
    const { done, onServer } = await chat.expectExactEnd(0, partial.id, question);
    // The dead worker's attempt was taken over by the new process's worker.
    expect(onServer.attempts).toBe(2);

    expect(await chat.connectionStates()).toEqual(["connecting", "live", "reconnecting", "resumed", "idle"]);
    expect(chat.pageErrors).toEqual([]);

    // The answer's Inspect link replays its log: two calls, the second a takeover, and the text.
    // Errors of any page of the context, from its first script on (the new tab's included).
    const inspectErrors: Error[] = [];
    chat.context.on("weberror", (webError) => inspectErrors.push(webError.error()));
    const [inspect] = await Promise.all([chat.context.waitForEvent("page"), chat.page.click("#messages .assistant .inspect-link")]);
    await inspect.waitForFunction(() => document.getElementById("status")?.textContent === "completed", undefined, { timeout: 10_000 });
    const shown = async (id: string): Promise<string> => (await inspect.locator(`#${id}`).textContent()) ?? "";
    expect([await shown("calls-count"), await shown("takeovers"), await shown("retries")]).toEqual(["2", "1", "0"]);
    expect(await inspect.locator("#calls tbody tr").evaluateAll((rows) => rows.map((row) => (row as HTMLElement).dataset.endedBy))).toEqual(
      ["takeover", "completed"],
    );
    expect(await shown("text")).toBe(done.text);
    await inspect.screenshot({ path: join(ARTIFACTS, "inspect-after-restart.png"), fullPage: true });
    // Replayed up to entry 2, the answer had just started and held no text.
    await inspect.locator("#until").evaluate((input) => {
      (input as HTMLInputElement).value = "2";
      input.dispatchEvent(new Event("input"));
    });
    await inspect.waitForFunction(() => document.getElementById("status")?.textContent === "running", undefined, { timeout: 10_000 });
    expect([await shown("entries"), await shown("text")]).toEqual([`2 of ${onServer.lastOffset}`, ""]);
    expect(inspectErrors).toEqual([]);
  });
  test("the browser goes offline mid-answer: the page reconnects, resumes and the text is exact", async (ctx) => {
    const chat = await ChatSession.open(ctx);
    const question = "What if my network drops?";

    await chat.send(question);
    const partial = await chat.waitForPartialAnswer(0, 20);
    await chat.context.setOffline(true);
    await chat.waitForConnectionState("reconnecting");
    const offline = await chat.shown(0);
    await sleep(1500);
    // Still offline: the answer went on without the page, which shows what it had and nothing more.
    expect(await chat.shown(0)).toEqual(offline);
    expect(offline.status).toBe("streaming");
    await chat.context.setOffline(false);

    await chat.expectExactEnd(0, partial.id, question);

    expect(await chat.connectionStates()).toEqual(["connecting", "live", "reconnecting", "resumed", "idle"]);
    expect(chat.pageErrors).toEqual([]);
  });

  test("a second tab opened mid-answer follows the same answer live, both end with the exact text, and it follows the next one too", async (ctx) => {
    const chat = await ChatSession.open(ctx);
    const question = "Can two tabs watch one answer?";

    await chat.send(question);
    const partial = await chat.waitForPartialAnswer(0, 20);
    const second = await chat.openTab();
    // Live in the second tab: it shows the answer while it is still being written.
    const secondPartial = await second.waitForPartialAnswer(0, 1);
    expect(secondPartial.id).toBe(partial.id);
    expect(await second.userMessages()).toEqual([question]);

    const [firstDone, secondDone] = await Promise.all([chat.waitForEnd(0), second.waitForEnd(0)]);
    const expected = simAnswer([{ role: "user", content: question }]);
    expect(secondPartial.text.length).toBeLessThan(expected.length);
    const onServer = await chat.generation(partial.id);
    expect(onServer.status).toBe("completed");
    for (const done of [firstDone, secondDone]) {
      expect(done).toEqual({ id: partial.id, status: "completed", text: onServer.text });
    }
    expect(onServer.text).toBe(expected);
    expectExactAnswer(await chat.log(partial.id), onServer.text);

    expect(await chat.connectionStates()).toEqual(["connecting", "live", "idle"]);
    // The second tab picked up an answer under way, as a reload does.
    expect(await second.connectionStates()).toEqual(["connecting", "resumed", "idle"]);

    // The idle second tab takes over what the first one sends next, and follows that answer too.
    const followUp = "And a follow-up?";
    await chat.send(followUp);
    const [firstNext, secondNext] = await Promise.all([chat.waitForEnd(1), second.waitForEnd(1)]);
    const nextText = simAnswer([
      { role: "user", content: question },
      { role: "assistant", content: expected },
      { role: "user", content: followUp },
    ]);
    expect(firstNext).toMatchObject({ status: "completed", text: nextText });
    expect(secondNext).toEqual(firstNext);
    expect(await second.userMessages()).toEqual([question, followUp]);
    expect(chat.pageErrors).toEqual([]);
    expect(second.pageErrors).toEqual([]);
  });
});
