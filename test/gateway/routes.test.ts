import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { GENERATION_ID } from "../../src/core/generation-id.ts";
import { ROUTE_PATHS, routes, type RouteName } from "../../src/core/routes.ts";
import type { PollResponse } from "../../src/core/wire.ts";
import { newGenerationId } from "../../src/engine/ids.ts";
import { startInProcess } from "../support/in-process.ts";
import { tableUnder, unquote } from "../support/markdown-table.ts";
import { readEvents } from "../support/sse-client.ts";

/** The routes that are files for a browser rather than the API of docs/http-api.md. */
const NOT_API = new Set<RouteName>(["clientBundle", "chatPage", "inspectPage", "opsPage"]);

describe("the route paths of core/routes.ts", () => {
  it("are the paths of the table of docs/http-api.md, both ways", () => {
    const docs = readFileSync(new URL("../../docs/http-api.md", import.meta.url), "utf8");
    const documented = tableUnder(docs, "# HTTP API (v1)").map(([route = ""]) => unquote(route).split(" ")[1]);
    const api = Object.entries(ROUTE_PATHS).flatMap(([name, path]) => (NOT_API.has(name as RouteName) ? [] : [path]));
    expect(documented.length).toBeGreaterThan(5); // the table was found and read
    expect([...documented].sort()).toEqual([...api].sort());
  });

  it("build paths with the id percent-encoded, so an id never reaches another route", () => {
    const id = "gen_x/../../healthz?a=1#b";
    const encoded = "gen_x%2F..%2F..%2Fhealthz%3Fa%3D1%23b";
    expect(routes.generation(id)).toBe(`/v1/generations/${encoded}`);
    expect(routes.events(id)).toBe(`/v1/generations/${encoded}/events`);
    expect(routes.poll(id)).toBe(`/v1/generations/${encoded}/poll`);
    expect(routes.timeline(id)).toBe(`/v1/generations/${encoded}/timeline`);
    expect(routes.cancel(id)).toBe(`/v1/generations/${encoded}/cancel`);
    expect(routes.inspectPage(id)).toBe(`/inspect.html?id=${encoded}`);
  });

  it("write the query parameters as the gateway reads them, and leave out those without a value", () => {
    expect(routes.events("gen_a", { from: "2:17" })).toBe("/v1/generations/gen_a/events?from=2%3A17");
    expect(routes.events("gen_a", { from: undefined })).toBe("/v1/generations/gen_a/events");
    expect(routes.poll("gen_a", { from: "0", waitMs: 250 })).toBe("/v1/generations/gen_a/poll?from=0&wait_ms=250");
    expect(routes.poll("gen_a", { waitMs: 0 })).toBe("/v1/generations/gen_a/poll?wait_ms=0");
    expect(routes.timeline("gen_a", { until: 3 })).toBe("/v1/generations/gen_a/timeline?until=3");
    expect(routes.timeline("gen_a", { until: undefined })).toBe("/v1/generations/gen_a/timeline");
  });
});

describe("GENERATION_ID", () => {
  it("accepts every id the engines issue, and nothing that is not one", () => {
    for (let i = 0; i < 100; i++) expect(newGenerationId()).toMatch(GENERATION_ID);
    for (const other of [
      "gen_",
      "gen_0000000000000000000000000",
      "GEN_00000000000000000000000000",
      "gen_000000000000000000000000000",
      "x",
    ]) {
      expect(other).not.toMatch(GENERATION_ID);
    }
  });
});

describe("a gateway", () => {
  let node: Awaited<ReturnType<typeof startInProcess>>;
  beforeAll(async () => {
    node = await startInProcess();
  });
  afterAll(async () => {
    await node?.stop();
  });
  const at = (path: string, init?: RequestInit): Promise<Response> => fetch(new URL(path, node.url), init);

  it("serves every route at the path its builder gives, and links a new generation with them", async () => {
    const created = await at(routes.generations(), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "sim", messages: [{ role: "user", content: "routes" }], max_tokens: 5 }),
    });
    expect(created.status).toBe(201);
    const { id, links } = (await created.json()) as { id: string; links: Record<string, string> };
    expect(links).toEqual({
      self: routes.generation(id),
      events: routes.events(id),
      poll: routes.poll(id),
      timeline: routes.timeline(id),
      cancel: routes.cancel(id),
    });

    const streamed = await readEvents(node.url, id);
    expect(streamed.status).toBe(200);
    expect((await at(routes.events(id, { from: streamed.messages.at(-1)?.id }))).status).toBe(204);
    const poll = (await (await at(routes.poll(id, { from: "0", waitMs: 0 }))).json()) as PollResponse;
    expect(poll.ended).toBe(true);
    expect(((await (await at(routes.generation(id))).json()) as { status: string }).status).toBe("completed");
    expect(((await (await at(routes.timeline(id, { until: 1 }))).json()) as { lastOffset: number }).lastOffset).toBe(1);
    const late = (await (await at(routes.cancel(id), { method: "POST" })).json()) as { error: { code: string } };
    expect(late.error.code).toBe("already_finished");

    for (const path of [routes.healthz(), routes.readyz(), routes.metrics()]) expect((await at(path)).status, path).toBe(200);
    expect((await at(routes.clientBundle())).headers.get("content-type")).toMatch(/^text\/javascript/);
    for (const path of [routes.chatPage(), routes.inspectPage(id)]) {
      expect((await at(path)).headers.get("content-type"), path).toMatch(/^text\/html/);
    }
    const ws = new WebSocket(new URL(routes.websocket(), node.url.replace(/^http/, "ws")));
    await new Promise((opened, failed) => ws.once("open", opened).once("error", failed));
    ws.close();
  });

  it("answers a generation that was never issued with generation_not_found on every route that takes an id", async () => {
    const unknown = "gen_00000000000000000000000000";
    for (const path of [
      routes.generation(unknown),
      routes.timeline(unknown),
      routes.events(unknown),
      routes.poll(unknown, { waitMs: 0 }),
    ]) {
      expect(((await (await at(path)).json()) as { error: { code: string } }).error.code, path).toBe("generation_not_found");
    }
    const cancelled = (await (await at(routes.cancel(unknown), { method: "POST" })).json()) as { error: { code: string } };
    expect(cancelled.error.code).toBe("generation_not_found");
  });
});
