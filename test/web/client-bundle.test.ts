import { Writable } from "node:stream";
import Fastify, { type FastifyBaseLogger } from "fastify";
import { pino } from "pino";
import { afterEach, describe, expect, test } from "vitest";
import { installErrorHandling } from "../../src/gateway/http-errors.ts";
import { clientBundleRoutes } from "../../src/gateway/routes/client-bundle.ts";
import { simTokens } from "../../src/llm/sim/sim-text.ts";
import { launchChromium } from "../support/browser.ts";
import { startInProcess } from "../support/in-process.ts";

interface BundleResult {
  readonly exports: string[];
  readonly status: string;
  readonly text: string;
  readonly serverText: string;
}

type Node = Awaited<ReturnType<typeof startInProcess>>;

let node: Node | undefined;
afterEach(async () => {
  await node?.stop();
  node = undefined;
});

async function startNode(): Promise<Node> {
  node = await startInProcess();
  return node;
}

describe("GET /client.js: the SDK bundled for browsers", () => {
  test("is an ES module exporting createClient, served as JavaScript with a cache validator", async () => {
    const { url } = await startNode();
    const res = await fetch(`${url}/client.js`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/javascript/);
    expect(res.headers.get("cache-control")).toBe("no-cache");
    const etag = res.headers.get("etag");
    expect(etag).toMatch(/^".+"$/);
    const code = await res.text();
    expect(code).toMatch(/export\s*\{[^}]*\bcreateClient\b/);
    // Bundled: no import of the TypeScript sources is left for the browser to resolve.
    expect(code).not.toMatch(/from\s*["'][^"']*\.ts["']/);

    const again = await fetch(`${url}/client.js`, { headers: { "if-none-match": etag ?? "" } });
    expect(again.status).toBe(304);
    expect(again.headers.get("etag")).toBe(etag);
  });

  test("imports in Chromium and its client starts and follows an answer to the exact text", async (ctx) => {
    const browser = await launchChromium(ctx);
    ctx.onTestFinished(() => browser.close());
    const { url } = await startNode();
    const page = await browser.newPage();
    const errors: Error[] = [];
    page.on("pageerror", (error) => errors.push(error));
    // Any page of the gateway's origin will do; this one runs no script of its own.
    await page.goto(`${url}/healthz`);
    // A module script, as a page would load the SDK (evaluate's own code would be rewritten by vitest).
    await page.addScriptTag({
      type: "module",
      content: `
        import * as sdk from "/client.js";
        const client = sdk.createClient({ baseUrl: "" });
        const { id } = await client.start({ model: "sim", messages: [{ role: "user", content: "Hello from the bundle" }] });
        const final = await client.follow(id).done;
        const view = await (await fetch(sdk.routes.generation(id))).json();
        window.bundleResult = { exports: Object.keys(sdk).sort(), status: final.status, text: final.text, serverText: view.text };
      `,
    });
    const handle = await page.waitForFunction(() => (window as unknown as { bundleResult?: BundleResult }).bundleResult, undefined, {
      timeout: 20_000,
    });
    const result = (await handle.jsonValue()) as BundleResult;
    expect(result.exports).toEqual(["AnswerFollow", "DEFAULT_RECONNECT", "LifelineClientError", "createClient", "routes"]);
    expect(result.status).toBe("completed");
    expect(result.text).toBe(simTokens({ messages: [{ role: "user", content: "Hello from the bundle" }] }).join(""));
    expect(result.text).toBe(result.serverText);
    expect(errors).toEqual([]);
  });

  test("a bundle that cannot be built answers 500 internal, is logged, and the server keeps serving", async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const app = Fastify({ loggerInstance: pino({ level: "error" }, sink) as FastifyBaseLogger });
    installErrorHandling(app);
    clientBundleRoutes(app, { entryPoint: "/nonexistent/lifeline-client.ts" });
    app.get("/alive", async () => ({ ok: true }));
    try {
      const res = await app.inject({ method: "GET", url: "/client.js" });
      expect(res.statusCode).toBe(500);
      expect(res.json()).toEqual({ error: { code: "internal", message: "An internal error occurred." } });
      expect(lines.some((line) => line.includes("the client SDK could not be bundled"))).toBe(true);
      // The failure is not cached, and the process is still answering.
      expect((await app.inject({ method: "GET", url: "/client.js" })).statusCode).toBe(500);
      expect((await app.inject({ method: "GET", url: "/alive" })).statusCode).toBe(200);
    } finally {
      await app.close();
    }
  });
});
