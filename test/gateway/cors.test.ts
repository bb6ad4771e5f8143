import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startInProcess } from "../support/in-process.ts";
import { simRequest } from "../support/sim-answer.ts";

type Node = Awaited<ReturnType<typeof startInProcess>>;

const LISTED = "https://app.example";
const UNLISTED = "https://evil.example";

const preflight = (url: string, origin: string): Promise<Response> =>
  fetch(`${url}/v1/generations`, {
    method: "OPTIONS",
    headers: {
      origin,
      "access-control-request-method": "POST",
      "access-control-request-headers": "authorization,content-type,idempotency-key",
    },
  });

describe("CORS with an allow-list", () => {
  let node: Node;
  beforeAll(async () => {
    node = await startInProcess({ LIFELINE_CORS_ORIGINS: `${LISTED},http://localhost:3000` });
  });
  afterAll(async () => node?.stop());

  it("answers a listed origin's preflight with the methods and headers a page needs", async () => {
    const res = await preflight(node.url, LISTED);
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe(LISTED);
    expect(res.headers.get("access-control-allow-credentials")).toBe("true");
    expect(res.headers.get("access-control-allow-methods")).toContain("POST");
    expect(res.headers.get("access-control-allow-headers")).toMatch(/authorization.*content-type.*idempotency-key/);
    expect(res.headers.get("vary")).toMatch(/origin/i);
  });

  it("gives an unlisted origin no CORS header at all, on the preflight and on the answer, so its page reads nothing", async () => {
    const refused = await preflight(node.url, UNLISTED);
    for (const name of ["access-control-allow-origin", "access-control-allow-credentials", "access-control-allow-headers"]) {
      expect(refused.headers.get(name), name).toBeNull();
    }
    const answer = await fetch(`${node.url}/v1/generations`, {
      method: "POST",
      headers: { origin: UNLISTED, "content-type": "application/json" },
      body: JSON.stringify(simRequest("from a page elsewhere", { max_tokens: 3 })),
    });
    expect(answer.headers.get("access-control-allow-origin")).toBeNull();
    expect(answer.headers.get("access-control-allow-credentials")).toBeNull();
  });

  it("lets a listed origin read the answer and the headers that name the generation", async () => {
    const answer = await fetch(`${node.url}/v1/generations`, {
      method: "POST",
      headers: { origin: LISTED, "content-type": "application/json" },
      body: JSON.stringify(simRequest("from the app's page", { max_tokens: 3 })),
    });
    expect(answer.status).toBe(201);
    expect(answer.headers.get("access-control-allow-origin")).toBe(LISTED);
    expect(answer.headers.get("access-control-expose-headers")).toContain("idempotent-replayed");
  });
});

describe("CORS by default", () => {
  let node: Node;
  beforeAll(async () => {
    node = await startInProcess();
  });
  afterAll(async () => node?.stop());

  it("lists no origin: a preflight finds no route and no answer carries a CORS header", async () => {
    const res = await preflight(node.url, LISTED);
    expect(res.status).toBe(404);
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
    const health = await fetch(`${node.url}/healthz`, { headers: { origin: LISTED } });
    expect(health.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("refuses an origin list that is not origins, with the option named", async () => {
    const { loadConfig, ConfigError } = await import("../../src/cli/config.ts");
    for (const bad of ["*", "app.example", "https://app.example/path", "https://a.example,,"]) {
      expect(() => loadConfig({ LIFELINE_CORS_ORIGINS: bad }, {}), bad).toThrow(ConfigError);
    }
    expect(() => loadConfig({ LIFELINE_CORS_ORIGINS: "https://a.example, http://localhost:3000" }, {})).not.toThrow();
  });
});
