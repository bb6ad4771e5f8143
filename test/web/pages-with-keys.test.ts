import type { Browser, Page } from "playwright-core";
import { describe, expect, test, type TestContext } from "vitest";
import type { LifelineProcess } from "../../src/chaos/lifeline-process.ts";
import type { Scope } from "../../src/core/api-keys.ts";
import { KeyRing } from "../../src/engine/keys/key-ring.ts";
import { SqliteKeyStore } from "../../src/engine/keys/sqlite.ts";
import { expectExactAnswer } from "../support/invariants.ts";
import { entriesOf, readEvents } from "../support/sse-client.ts";
import { saveScreenshot } from "./support/artifacts.ts";
import { SharedChat, simAnswer } from "./support/chat-session.ts";
import { ChatTab } from "./support/chat-tab.ts";
import { InspectTab } from "./support/inspect-tab.ts";

/** 120 tokens at 60/s: a 2 s answer, long enough to reload in the middle of. */
const SERVER_ENV = { LIFELINE_SIM_TOKENS_PER_SECOND: "60" };

/** What one page sent: every request's URL and whether it carried the key, and what it wrote to its console. */
interface Traffic {
  readonly urls: string[];
  readonly keyHeaders: string[];
  readonly console: string[];
}

/** A real `lifeline start` with API keys in its store, and a real Chromium. */
interface Deployment {
  readonly server: LifelineProcess;
  readonly browser: Browser;
  readonly keys: { readonly full: string; readonly reader: string };
  watch(page: Page): Traffic;
}

/**
 * The file's one deployment: its Chromium and server shared by every test (each opens its own
 * browser context: its own localStorage, so its own key and conversation), its keys made once,
 * in the store the server reads, before it starts.
 */
function sharedDeployment(): (ctx: TestContext) => Promise<Deployment> {
  const shared = SharedChat.use(SERVER_ENV);
  let keys: Promise<Deployment["keys"]> | undefined;
  return async (ctx) => {
    keys ??= makeKeys(shared.dataDir.path);
    const made = await keys;
    const [browser, server] = await Promise.all([shared.browser(ctx), shared.server()]);
    return { server, browser, keys: made, watch };
  };
}

async function makeKeys(dataDir: string): Promise<Deployment["keys"]> {
  const store = new SqliteKeyStore({ dataDir });
  try {
    const ring = new KeyRing(store);
    const make = async (scopes: Scope[]): Promise<string> => (await ring.create("acme", scopes)).key;
    return { full: await make(["generations:create", "generations:read"]), reader: await make(["generations:read"]) };
  } finally {
    await store.close();
  }
}

/** Records what `page` sends and writes to its console from now on. */
function watch(page: Page): Traffic {
  const traffic: Traffic = { urls: [], keyHeaders: [], console: [] };
  page.on("request", (request) => {
    traffic.urls.push(request.url());
    const authorization = request.headers().authorization;
    if (authorization !== undefined) traffic.keyHeaders.push(`${request.method()} ${new URL(request.url()).pathname} ${authorization}`);
  });
  page.on("console", (message) => traffic.console.push(message.text()));
  return traffic;
}

/** The key form of a page: whether it shows, and the reason it gives. */
async function keyFormOf(page: Page): Promise<{ shown: boolean; reason: string }> {
  const shown = await page.isVisible("#key-form");
  return { shown, reason: shown ? ((await page.locator("#key-reason").textContent()) ?? "") : "" };
}

async function enterKey(page: Page, key: string): Promise<void> {
  await page.fill("#api-key", key);
  await page.click("#key-form button[type=submit]");
}

describe("the pages of a deployment with API keys, in a real browser", () => {
  const deployment = sharedDeployment();

  test("the chat page asks for a key once, starts answers with it, follows them with read tokens, and a reload mid-answer continues exactly", async (ctx) => {
    const { server, browser, keys, watch } = await deployment(ctx);
    const context = await browser.newContext();
    const chat = new ChatTab(await context.newPage());
    ctx.onTestFinished(() => chat.screenshot("pages-with-keys-chat.png"));
    const traffic = watch(chat.page);
    await chat.load(server.url);

    const question = "Who may read this answer?";
    await chat.send(question);
    await chat.page.waitForSelector("#key-form", { state: "visible" });
    expect((await keyFormOf(chat.page)).reason).toMatch(/asks for an API key/);
    expect(await chat.statusLine(0)).toBe("Waiting for an API key…");
    await chat.screenshot("pages-with-keys-asked.png");

    await enterKey(chat.page, keys.full);
    const first = await chat.waitForEnd(0);
    expect(first.status).toBe("completed");
    expect(first.text).toBe(simAnswer([{ role: "user", content: question }]));
    expect((await keyFormOf(chat.page)).shown).toBe(false);

    // The second answer: no question asked, and a reload in the middle of it.
    const followUp = "And after a reload?";
    await chat.send(followUp);
    const partial = await chat.waitForPartialAnswer(1, 20);
    await chat.reload();
    const second = await chat.waitForEnd(1);
    expect(second).toMatchObject({ id: partial.id, status: "completed" });
    const conversation = [
      { role: "user", content: question },
      { role: "assistant", content: first.text },
      { role: "user", content: followUp },
    ] as const;
    expect(second.text).toBe(simAnswer(conversation));
    const log = await readEvents(server.url, second.id, { from: "0", headers: { authorization: `Bearer ${keys.full}` } });
    expectExactAnswer(entriesOf(log.messages), second.text);
    expect((await keyFormOf(chat.page)).shown).toBe(false);

    // The key went only as a header, to start answers and to renew tokens; the answers were followed with tokens.
    expect(traffic.urls.filter((url) => url.includes(keys.full))).toEqual([]);
    expect(traffic.console.filter((line) => line.includes(keys.full))).toEqual([]);
    const keyUses = new Set(traffic.keyHeaders.map((line) => line.replace(/ Bearer .*$/, "")));
    expect(
      [...keyUses].every((use) => /^POST \/v1\/generations(\/gen_[^/]+\/token)?$/.test(use)),
      [...keyUses].join(", "),
    ).toBe(true);
    expect(keyUses.has(`POST /v1/generations/${second.id}/token`)).toBe(true); // the reloaded page renewed its token with the key
    const follows = traffic.urls.filter((url) => url.includes("/events"));
    expect(follows.length).toBeGreaterThan(1);
    expect(follows.every((url) => new URL(url).searchParams.get("token")?.startsWith("llt_"))).toBe(true);
    expect(chat.pageErrors).toEqual([]);

    // The Inspect link opens the timeline in a tab that has the key already.
    const inspect = await chat.openInspect(1);
    ctx.onTestFinished(() => inspect.screenshot("pages-with-keys-inspect.png"));
    await inspect.waitForStatus("completed");
    expect(await inspect.field("text")).toBe(second.text);
    expect((await keyFormOf(inspect.page)).shown).toBe(false);
    expect(inspect.errors).toEqual([]);
  });

  test("a wrong key and a key without the scope get a clear message on the page, and a good key then starts the answer", async (ctx) => {
    const { server, browser, keys } = await deployment(ctx);
    const chat = new ChatTab(await (await browser.newContext()).newPage());
    ctx.onTestFinished(() => chat.screenshot("pages-with-keys-refused.png"));
    await chat.load(server.url);

    const question = "Which key works?";
    await chat.send(question);
    await chat.page.waitForSelector("#key-form", { state: "visible" });
    await enterKey(chat.page, "two words");
    await chat.page.waitForFunction(() => /one word/.test(document.getElementById("key-reason")?.textContent ?? ""));
    await enterKey(chat.page, "llk_not_a_key_of_this_deployment");
    await chat.page.waitForFunction(() => /not valid/.test(document.getElementById("key-reason")?.textContent ?? ""));
    expect((await keyFormOf(chat.page)).shown).toBe(true);

    await enterKey(chat.page, keys.reader);
    await chat.page.waitForFunction(() => /may not do that/.test(document.getElementById("key-reason")?.textContent ?? ""));
    await saveScreenshot(chat.page, "pages-with-keys-forbidden.png");
    expect((await chat.shown(0)).status).toBe("streaming"); // waiting, not broken

    await enterKey(chat.page, keys.full);
    const answer = await chat.waitForEnd(0);
    expect(answer.status).toBe("completed");
    expect(answer.text).toBe(simAnswer([{ role: "user", content: question }]));
    expect(chat.pageErrors).toEqual([]);
  });

  test("where event streams are refused, the chat page follows over a WebSocket opened without the key, each subscription carrying its token", async (ctx) => {
    const { server, browser, keys, watch } = await deployment(ctx);
    const chat = new ChatTab(await (await browser.newContext()).newPage());
    // Something in the way refuses event streams, as a proxy's error page: the SDK moves on to the WebSocket.
    await chat.page.route(/\/events(\?|$)/, (route) =>
      route.fulfill({ status: 403, contentType: "text/html", body: "<h1>Forbidden</h1>" }),
    );
    ctx.onTestFinished(() => chat.screenshot("pages-with-keys-websocket.png"));
    const traffic = watch(chat.page);
    const sent: string[] = [];
    const upgrades: string[] = [];
    chat.page.on("websocket", (ws) => {
      upgrades.push(ws.url());
      ws.on("framesent", (frame) => sent.push(String(frame.payload)));
    });
    await chat.load(server.url);

    const question = "Over which way, with which token?";
    await chat.send(question);
    await chat.page.waitForSelector("#key-form", { state: "visible" });
    await enterKey(chat.page, keys.full);
    const answer = await chat.waitForEnd(0);
    expect(answer.status).toBe("completed");
    expect(answer.text).toBe(simAnswer([{ role: "user", content: question }]));
    expect(await chat.transport()).toBe("websocket");

    const subscribes = sent.map((payload) => JSON.parse(payload) as { type: string; token?: string }).filter((f) => f.type === "subscribe");
    expect(subscribes.length).toBeGreaterThan(0);
    expect(subscribes.every((frame) => frame.token?.startsWith("llt_"))).toBe(true);
    expect(sent.filter((payload) => payload.includes(keys.full))).toEqual([]);
    expect(traffic.urls.filter((url) => url.includes(keys.full))).toEqual([]);
    expect(upgrades.length).toBeGreaterThan(0);
    expect(upgrades.every((url) => !url.includes("token=") && !url.includes(keys.full))).toBe(true);
    expect(chat.pageErrors).toEqual([]);
  });

  test("the inspect page opened on its own asks for the key, then shows the timeline", async (ctx) => {
    const { server, browser, keys, watch } = await deployment(ctx);
    const res = await fetch(`${server.url}/v1/generations`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${keys.full}` },
      body: JSON.stringify({ model: "sim", messages: [{ role: "user", content: "inspect me" }], max_tokens: 20 }),
    });
    const { id } = (await res.json()) as { id: string };
    const context = await browser.newContext();
    const errors: Error[] = [];
    context.on("weberror", (webError) => errors.push(webError.error()));
    const page = await context.newPage();
    const traffic = watch(page);
    const inspect = new InspectTab(page, errors);
    ctx.onTestFinished(() => inspect.screenshot("pages-with-keys-inspect-alone.png"));
    await page.goto(`${server.url}/inspect.html?id=${id}`);

    await page.waitForSelector("#key-form", { state: "visible" });
    expect(await page.locator("#problem").textContent()).toMatch(/API key/);
    await enterKey(page, keys.full);
    await inspect.waitForStatus("completed");
    expect(await page.isVisible("#problem")).toBe(false);
    expect(traffic.urls.filter((url) => url.includes(keys.full))).toEqual([]);
    expect(errors).toEqual([]);
  });
});
