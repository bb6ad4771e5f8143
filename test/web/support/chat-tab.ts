import type { BrowserContext, Locator, Page } from "playwright-core";
import { saveScreenshot } from "./artifacts.ts";
import { InspectTab } from "./inspect-tab.ts";

/** Where the chat page keeps its conversation in localStorage (src/web/public/app.js). */
const STORAGE_KEY = "lifeline.chat.v1";
/** The longest a test waits for an answer to reach a state: a sim answer takes about 2 s. */
const ANSWER_TIMEOUT_MS = 30_000;

/** An answer as the page shows it. */
export interface ShownAnswer {
  /** Its generation (`data-generation`), "" before the POST returned. */
  readonly id: string;
  /** `streaming`, `completed`, `failed` or `cancelled` (`data-status`). */
  readonly status: string;
  readonly text: string;
}

/** A turn as the page stored it in localStorage (the fields the tests read). */
export interface StoredTurn {
  readonly role?: string;
  readonly generation?: string;
  readonly status?: string;
  readonly lastOffset?: number;
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

/** One browser tab on the chat page: what a user does there, what it shows and which connection states it went through. */
export class ChatTab {
  /** Uncaught errors of the page's scripts. */
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

  /** Reloads the page; its connection states are recorded afresh. */
  async reload(): Promise<void> {
    await this.page.reload();
  }

  /** Types `text` in the composer and presses Send. */
  async send(text: string): Promise<void> {
    await this.page.fill("#prompt", text);
    await this.page.click("#send");
  }

  /** Presses Stop. */
  async stop(): Promise<void> {
    await this.page.click("#stop");
  }

  async canSend(): Promise<boolean> {
    return this.page.isEnabled("#send");
  }

  async canStop(): Promise<boolean> {
    return this.page.isEnabled("#stop");
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

  /** Waits until #connection's data-state is `state`. */
  async waitForConnectionState(state: string, timeout = 10_000): Promise<void> {
    await this.page.waitForFunction((wanted) => document.getElementById("connection")?.dataset.state === wanted, state, { timeout });
  }

  /** The `index`-th answer as it shows now. */
  async shown(index: number): Promise<ShownAnswer> {
    const answer = this.answer(index);
    return {
      id: (await answer.getAttribute("data-generation")) ?? "",
      status: (await answer.getAttribute("data-status")) ?? "",
      text: (await answer.locator(".content").textContent()) ?? "",
    };
  }

  /** The line under the `index`-th answer: a note while it streams, how it ended after. */
  async statusLine(index: number): Promise<string | null> {
    return this.answer(index).locator(".meta").textContent();
  }

  async userMessages(): Promise<string[]> {
    return this.page.locator("#messages .user .content").allTextContents();
  }

  /** Every data-state #connection took since the page (re)loaded. */
  async connectionStates(): Promise<string[]> {
    return this.page.evaluate(() => (window as unknown as { connectionStates: string[] }).connectionStates);
  }

  /** The transport #connection says the last answer came over (`data-transport`). */
  async transport(): Promise<string | null> {
    return this.page.locator("#connection").getAttribute("data-transport");
  }

  /** The conversation as the page keeps it in localStorage: each question, then its answer. */
  async storedTurns(): Promise<StoredTurn[]> {
    return this.page.evaluate((key) => (JSON.parse(localStorage.getItem(key) ?? "null") as { turns: StoredTurn[] }).turns, STORAGE_KEY);
  }

  /**
   * Follows the `index`-th answer's Inspect link to its timeline in a new tab. The errors of every
   * tab of the browser context are recorded from then on, so the new tab's count from its first script.
   */
  async openInspect(index: number): Promise<InspectTab> {
    const context = this.page.context();
    const errors: Error[] = [];
    context.on("weberror", (webError) => errors.push(webError.error()));
    const [page] = await Promise.all([context.waitForEvent("page"), this.answer(index).locator(".inspect-link").click()]);
    return new InspectTab(page, errors);
  }

  /** A screenshot of the tab in the test artifacts; a tab that cannot take one any more is left alone. */
  async screenshot(file: string): Promise<void> {
    await saveScreenshot(this.page, file).catch(() => undefined);
  }

  private answer(index: number): Locator {
    return this.page.locator("#messages .assistant").nth(index);
  }
}
