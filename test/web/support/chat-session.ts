import { setTimeout as sleep } from "node:timers/promises";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, expect, type TestContext } from "vitest";
import { startLifeline, type LifelineProcess } from "../../../src/chaos/lifeline-process.ts";
import type { ChatMessage, Entry } from "../../../src/core/entries.ts";
import { simTokens } from "../../../src/llm/sim/sim-text.ts";
import { startBlockingProxy, type BlockingProxy, type BlockingProxyOptions } from "../../client/support/blocking-proxy.ts";
import { launchChromium } from "../../support/browser.ts";
import { expectExactAnswer } from "../../support/invariants.ts";
import { entriesOf, readEvents } from "../../support/sse-client.ts";
import { tempDir } from "../../support/temp-dir.ts";
import { ChatTab, type ShownAnswer } from "./chat-tab.ts";

/** The page sends no max_tokens: 120 tokens at 60/s is a 2 s answer, long enough to interrupt. */
const SERVER_ENV = { LIFELINE_SIM_TOKENS_PER_SECOND: "60", LIFELINE_LEASE_MS: "1000" };

/** A generation as `GET /v1/generations/:id` answers it (the fields the tests read). */
export interface GenerationBody {
  readonly status: string;
  readonly text: string;
  readonly lastOffset: number;
  readonly attempts: number;
}

/** The uninterrupted answer of the sim model to these messages (DESIGN §5: deterministic). */
export function simAnswer(messages: readonly ChatMessage[]): string {
  return simTokens({ messages }).join("");
}

/** A real `lifeline start`, a real Chromium on its chat page, and cleanup (screenshots first) when the test ends. */
export class ChatSession extends ChatTab {
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

  /**
   * A chat page in a browser context of its own. With `shared`, on the file's one Chromium and one
   * server, which stay up for the next test (a test that kills or restarts its server opens its
   * own). `network`: the page reaches the server through a proxy that blocks what it says, as a
   * restrictive network does.
   */
  static async open(
    ctx: TestContext,
    options: { readonly shared?: SharedChat; readonly network?: BlockingProxyOptions } = {},
  ): Promise<ChatSession & { proxy?: BlockingProxy }> {
    const { shared, network } = options;
    const dataDir = shared ? undefined : tempDir("lifeline-web-");
    let browser: Browser | undefined;
    let server: LifelineProcess | undefined;
    let proxy: BlockingProxy | undefined;
    const opened: { session?: ChatSession } = {};
    ctx.onTestFinished(async () => {
      try {
        if (opened.session) await opened.session.#screenshots(ctx.task.name);
        await (shared ? opened.session?.context.close() : browser?.close());
        await proxy?.close();
        // The session's server, which a test may have restarted, else the one that started.
        if (!shared) await (opened.session?.server ?? server)?.kill();
      } finally {
        dataDir?.remove();
      }
    });
    const [launched, started] = await Promise.allSettled([
      shared ? shared.browser(ctx) : launchChromium(ctx),
      shared ? shared.server() : startLifeline("start", { ...SERVER_ENV, LIFELINE_DATA_DIR: dataDir!.path }),
    ]);
    if (launched.status === "fulfilled") browser = launched.value;
    if (started.status === "fulfilled") server = started.value;
    if (launched.status === "rejected") throw launched.reason;
    if (started.status === "rejected") throw started.reason;
    const page = await (await launched.value.newContext()).newPage();
    const session = new ChatSession(page, started.value, shared?.dataDir ?? dataDir!);
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

  /** Takes the whole browser off the network (`true`) or puts it back on. */
  async setOffline(offline: boolean): Promise<void> {
    await this.context.setOffline(offline);
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

  /** The generation `id` as the server has it now. */
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

/**
 * One Chromium and one `lifeline start` for the tests of a file, started by the first test that
 * asks and stopped after the last: about two seconds of start-up less per test. Each test still
 * has its own browser context (its own localStorage, so its own conversation) and asks its own
 * questions, so what one test leaves on the server is not what the next one reads.
 */
export class SharedChat {
  readonly dataDir = tempDir("lifeline-web-");
  readonly #env: Readonly<Record<string, string>>;
  readonly #browser = new Retained<Browser>();
  readonly #server = new Retained<LifelineProcess>();

  private constructor(env: Readonly<Record<string, string>>) {
    this.#env = env;
  }

  /** A SharedChat for the file, stopped by `afterAll`; `env` is its server's (the chat page's by default). */
  static use(env: Readonly<Record<string, string>> = SERVER_ENV): SharedChat {
    const shared = new SharedChat(env);
    afterAll(() => shared.#close());
    return shared;
  }

  /** The file's Chromium; a test that finds none fails under CI and is skipped elsewhere (see launchChromium). */
  browser(ctx: TestContext): Promise<Browser> {
    return this.#browser.get(() => launchChromium(ctx));
  }

  server(): Promise<LifelineProcess> {
    return this.#server.get(() => startLifeline("start", { ...this.#env, LIFELINE_DATA_DIR: this.dataDir.path }));
  }

  async #close(): Promise<void> {
    try {
      const [browser, server] = await Promise.allSettled([this.#browser.current, this.#server.current]);
      if (browser.status === "fulfilled") await browser.value?.close();
      if (server.status === "fulfilled") await server.value?.kill();
    } finally {
      this.dataDir.remove();
    }
  }
}

/** What `make` gave the first time, to every later caller; made again when the last try failed. */
class Retained<T> {
  current: Promise<T> | undefined;

  async get(make: () => Promise<T>): Promise<T> {
    this.current ??= make();
    try {
      return await this.current;
    } catch (error) {
      this.current = undefined;
      throw error;
    }
  }
}
