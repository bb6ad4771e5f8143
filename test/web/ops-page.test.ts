import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "vitest";
import { startLifeline, type LifelineProcess } from "../../src/chaos/lifeline-process.ts";
import { routes } from "../../src/core/routes.ts";
import { KeyRing } from "../../src/engine/keys/key-ring.ts";
import { SqliteKeyStore } from "../../src/engine/keys/sqlite.ts";
import type { WorkerStatus } from "../../src/engine/workers/port.ts";
import { launchChromium } from "../support/browser.ts";
import { redisAvailable, requireRedis, startStandalone, type RedisServer } from "../support/redis-harness.ts";
import { simRequest } from "../support/sim-answer.ts";
import { startSimLlmProcess, type SimLlmProcess } from "../support/sim-llm-process.ts";
import { tempDir } from "../support/temp-dir.ts";
import { until } from "../support/waits.ts";
import { ARTIFACTS, saveScreenshot } from "./support/artifacts.ts";

/** The screenshots this test keeps, under test-artifacts/. */
const SHOTS = { overview: "ops/ops-stuck-and-taken-over.png", search: "ops/ops-search.png", inspect: "ops/ops-inspect.png" };
/** How long an answer may go without an entry before /ops calls it stuck: short, so the test need not wait. */
const STUCK_AFTER_MS = "2000";

/**
 * A distributed deployment on a real Redis: a gateway and two workers, each its own process, and a
 * sim-llm behind a provider whose answers stall after three tokens (with an idle timeout far past
 * the test, so the answer stays running and silent).
 */
describe("the operations page in a real browser, on a distributed deployment", () => {
  const dir = tempDir("lifeline-ops-page-");
  let redis: RedisServer;
  let sim: SimLlmProcess;
  let gateway: LifelineProcess;
  const workers: LifelineProcess[] = [];

  beforeEach((ctx) => requireRedis(ctx));
  beforeAll(async () => {
    if (!redisAvailable()) return;
    [redis, sim] = await Promise.all([startStandalone(), startSimLlmProcess(["--tokens-per-second", "50"])]);
    const config = join(dir.path, "models.json");
    writeFileSync(
      config,
      JSON.stringify({
        providers: { stalling: { type: "openai-compatible", baseUrl: `${sim.url}/v1`, headers: { "x-sim-fault": "stall;after=3" } } },
        models: { stalls: { provider: "stalling", timeouts: { firstTokenMs: 600_000, idleMs: 600_000, totalMs: 600_000 } } },
      }),
    );
    const env = {
      LIFELINE_ENGINE: "redis",
      LIFELINE_REDIS_URL: redis.url,
      LIFELINE_REDIS_PREFIX: `ops${process.pid}`,
      LIFELINE_CONFIG: config,
      // Long enough that a loaded machine renews in time (a missed renewal would be a takeover of its own).
      LIFELINE_LEASE_MS: "5000",
      LIFELINE_SIM_TOKENS_PER_SECOND: "10",
      LIFELINE_STUCK_AFTER_MS: STUCK_AFTER_MS,
      // The read models (sqlite, beside the engine's other local files) of this deployment alone.
      LIFELINE_DATA_DIR: join(dir.path, "data"),
    };
    const started = await Promise.all([
      startLifeline("gateway", env),
      startLifeline("worker", { ...env, LIFELINE_WORKER_NAME: "w1" }),
      startLifeline("worker", { ...env, LIFELINE_WORKER_NAME: "w2" }),
    ]);
    gateway = started[0];
    workers.push(started[1], started[2]);
  }, 120_000);
  afterAll(async () => {
    await Promise.all([gateway?.kill(), ...workers.map((w) => w.kill())]);
    await Promise.all([sim?.stop(), redis?.stop()]);
    dir.remove();
  });

  const start = async (body: object): Promise<string> => {
    const res = await fetch(`${gateway.url}${routes.generations()}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    expect(res.status).toBe(201);
    return ((await res.json()) as { id: string }).id;
  };
  const statusOf = async (id: string): Promise<string> =>
    ((await (await fetch(`${gateway.url}${routes.generation(id)}`)).json()) as { status: string }).status;
  const reports = async (): Promise<WorkerStatus[]> =>
    ((await (await fetch(`${gateway.url}${routes.opsWorkers()}`)).json()) as { workers: WorkerStatus[] }).workers;

  test("shows a stuck answer marked stuck, a taken-over one with its takeover, the workers' leases, and finds an answer whose link opens its inspect page", async (ctx) => {
    const startedAt = Date.now();
    const finished = await start(simRequest("an answer to find", { max_tokens: 5 }));
    await until(async () => (await statusOf(finished)) === "completed", 60_000, "the answer to find to complete");
    const stuck = await start({ model: "stalls", messages: [{ role: "user", content: "stall" }], max_tokens: 50 });
    const takenOver = await start(simRequest("an answer whose worker dies", { max_tokens: 900 }));

    // The worker holding the long answer is SIGKILLed mid-answer; the other one takes it over.
    let holder: string | undefined;
    await until(
      async () => (holder = (await reports()).find((r) => r.leases.some((l) => l.id === takenOver))?.worker) !== undefined,
      60_000,
      "a worker to report the long answer's lease",
    );
    const victim = workers.find((w) => w.output().includes(`Lifeline worker ${holder} is running`))!;
    const survivor = holder === "w1" ? "w2" : "w1";
    await victim.kill();
    await until(
      async () => (await reports()).some((r) => r.worker === survivor && r.leases.some((l) => l.id === takenOver && l.fence >= 2)),
      60_000,
      "the other worker to report the answer taken over",
    );

    const browser: Browser = await launchChromium(ctx);
    ctx.onTestFinished(() => browser.close());
    const page: Page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    const errors: Error[] = [];
    page.on("pageerror", (error) => errors.push(error));
    await page.goto(`${gateway.url}${routes.opsPage()}`);

    const liveRow = (id: string) => page.locator(`#live tbody tr[data-id="${id}"]`);
    await liveRow(stuck).and(page.locator('[data-stuck="true"]')).waitFor({ timeout: 60_000 });
    await expect(liveRow(stuck).locator(".flag").textContent()).resolves.toBe("stuck");
    // Taken over, and moving again: while its lease ran out it was silent (stuck, rightly); its new worker writes on.
    await liveRow(takenOver).and(page.locator('[data-takeovers="1"][data-stuck="false"]')).waitFor({ timeout: 60_000 });
    // The worker that took over holds the answer's lease; the answer's row links to its inspect page.
    await page.locator(`#workers tbody tr[data-worker="${survivor}"] li[data-id="${takenOver}"]`).waitFor({ timeout: 60_000 });
    expect(await page.locator(`#workers tbody tr[data-worker="${survivor}"]`).getAttribute("data-reporting")).toBe("true");
    expect(await page.locator(`#breakers tbody tr[data-provider="stalling"]`).count()).toBeGreaterThan(0);
    await page.locator('#models tbody tr[data-model="stalls"]').waitFor({ timeout: 60_000 });
    await page.locator('#models tbody tr[data-model="sim"]').waitFor({ timeout: 60_000 });
    // The killed worker says nothing more: late first, then gone from the reports (the logs still name it).
    await page
      .locator(`#workers tbody tr[data-worker="${holder}"]:is([data-late="true"], [data-reporting="false"])`)
      .waitFor({ timeout: 60_000 });
    await saveScreenshot(page, SHOTS.overview);

    // By status, model and time: the finished answer, and neither live one.
    await page.selectOption('#search select[name="status"]', "completed");
    await page.fill('#search input[name="model"]', "sim");
    await page.fill('#search input[name="since"]', localTime(startedAt - 60_000));
    await page.click('#search button[type="submit"]');
    await page.locator(`#results tbody tr[data-id="${finished}"]`).waitFor({ timeout: 60_000 });
    const found = await page.locator("#results tbody tr").evaluateAll((rows) => rows.map((row) => (row as HTMLElement).dataset.id));
    expect(found).toContain(finished);
    expect(found).not.toContain(takenOver);
    expect(found).not.toContain(stuck);

    // By its id alone; its link opens the inspect page.
    await page.selectOption('#search select[name="status"]', "");
    await page.fill('#search input[name="model"]', "");
    await page.fill('#search input[name="since"]', "");
    await page.fill('#search input[name="id"]', finished);
    await page.click('#search button[type="submit"]');
    const result = page.locator(`#results tbody tr[data-id="${finished}"]`);
    await result.waitFor({ timeout: 60_000 });
    expect(await result.getAttribute("data-status")).toBe("completed");
    await saveScreenshot(page, SHOTS.search);
    await result.locator("a").click();
    await page.waitForURL(`**${routes.inspectPage(finished)}`);
    await page.waitForFunction(() => document.getElementById("status")?.textContent === "completed", undefined, { timeout: 60_000 });
    await saveScreenshot(page, SHOTS.inspect);
    expect(errors).toEqual([]);
    for (const shot of Object.values(SHOTS)) console.log(`screenshot: ${join(ARTIFACTS, shot)}`);
  }, 300_000);
});

describe("the operations page of a deployment with API keys, in a real browser", () => {
  test("asks for a key, refuses a tenant's key with a sentence naming the admin scope, and with an admin key shows the workers", async (ctx) => {
    const data = tempDir("lifeline-ops-keys-");
    const store = new SqliteKeyStore({ dataDir: data.path });
    const ring = new KeyRing(store);
    const tenantKey = (await ring.create("acme", ["generations:create", "generations:read"])).key;
    const adminKey = (await ring.create("ops", ["admin"])).key;
    await store.close();
    const opened: { server?: LifelineProcess; browser?: Browser } = {};
    ctx.onTestFinished(async () => {
      try {
        await opened.browser?.close();
        await opened.server?.kill();
      } finally {
        data.remove();
      }
    });
    opened.server = await startLifeline("start", { LIFELINE_DATA_DIR: data.path, LIFELINE_WORKER_NAME: "w-keys" });
    opened.browser = await launchChromium(ctx);
    const page = await opened.browser.newPage({ viewport: { width: 1400, height: 900 } });
    const errors: Error[] = [];
    page.on("pageerror", (error) => errors.push(error));
    const keyHeaders: string[] = [];
    page.on("request", (request) => {
      const authorization = request.headers().authorization;
      if (authorization !== undefined) keyHeaders.push(`${new URL(request.url()).pathname} ${authorization}`);
    });
    await page.goto(`${opened.server.url}${routes.opsPage()}`);

    await page.waitForSelector("#key-form", { state: "visible" });
    expect(await page.locator("#key-reason").textContent()).toMatch(/asks for an API key/);
    await page.fill("#api-key", tenantKey);
    await page.click("#key-form button[type=submit]");
    await page.waitForFunction(() => /admin scope/.test(document.getElementById("key-reason")?.textContent ?? ""));
    await saveScreenshot(page, "ops/ops-keys-forbidden.png");

    await page.fill("#api-key", adminKey);
    await page.click("#key-form button[type=submit]");
    await page.locator('#workers tbody tr[data-worker="w-keys"][data-reporting="true"]').waitFor({ timeout: 60_000 });
    expect(await page.isVisible("#key-form")).toBe(false);
    await saveScreenshot(page, "ops/ops-keys-admin.png");
    // The key went only in the Authorization header, never in a URL.
    expect(keyHeaders.some((line) => line.endsWith(`Bearer ${adminKey}`))).toBe(true);
    expect(page.url()).not.toContain(adminKey);
    expect(errors).toEqual([]);
    console.log(`screenshot: ${join(ARTIFACTS, "ops/ops-keys-admin.png")}`);
  }, 180_000);
});

/** `ms` as a `datetime-local` input takes it: the browser's local time, to the second. */
function localTime(ms: number): string {
  const at = new Date(ms - new Date(ms).getTimezoneOffset() * 60_000);
  return at.toISOString().slice(0, 19);
}
