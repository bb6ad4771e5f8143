import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { loadConfig } from "../../src/cli/config.ts";
import { isLoopback, startNode } from "../../src/cli/node.ts";
import type { Scope } from "../../src/core/api-keys.ts";
import type { Entry } from "../../src/core/entries.ts";
import { KeyRing } from "../../src/engine/keys/key-ring.ts";
import { newSigningKey } from "../../src/engine/keys/signing-keys.ts";
import { ReadTokens } from "../../src/gateway/auth/read-tokens.ts";
import { SqliteKeyStore } from "../../src/engine/keys/sqlite.ts";
import { startInProcess } from "../support/in-process.ts";
import { simRequest, simText } from "../support/sim-answer.ts";
import { entriesOf, readEvents } from "../support/sse-client.ts";
import { tempDir } from "../support/temp-dir.ts";
import { upgrade } from "../support/ws-upgrade.ts";

type Node = Awaited<ReturnType<typeof startInProcess>>;

const request = simRequest("an answer that belongs to acme", { max_tokens: 30, seed: 3 });

describe("API keys, scopes and tenants on the native API", () => {
  const data = tempDir();
  let node: Node;
  const keys: Record<string, string> = {};
  let store: SqliteKeyStore;
  let acmeAnswer: string;

  const call = (path: string, key: string | undefined, init: RequestInit = {}): Promise<Response> =>
    fetch(`${node.url}${path}`, {
      ...init,
      headers: {
        ...(init.body === undefined ? {} : { "content-type": "application/json" }),
        ...(key ? { authorization: `Bearer ${key}` } : {}),
        ...init.headers,
      },
    });
  const create = (key: string | undefined, headers: Record<string, string> = {}): Promise<Response> =>
    call("/v1/generations", key, { method: "POST", body: JSON.stringify(request), headers });
  const codeOf = async (res: Response): Promise<string> => ((await res.json()) as { error: { code: string } }).error.code;

  beforeAll(async () => {
    store = new SqliteKeyStore({ dataDir: data.path });
    const ring = new KeyRing(store);
    const make = async (name: string, tenant: string, scopes: Scope[]): Promise<string> => {
      const made = await ring.create(tenant, scopes);
      keys[name] = made.key;
      return made.stored.id;
    };
    await make("acme", "acme", ["generations:create", "generations:read"]);
    await make("acmeReader", "acme", ["generations:read"]);
    await make("beta", "beta", ["generations:create", "generations:read"]);
    await make("admin", "ops", ["admin"]);
    await store.revoke(await make("revoked", "acme", ["generations:create", "generations:read"]), new Date().toISOString());
    node = await startInProcess({ LIFELINE_ENGINE: "sqlite", LIFELINE_DATA_DIR: data.path });
    const created = await create(keys.acme);
    expect(created.status).toBe(201);
    acmeAnswer = ((await created.json()) as { id: string }).id;
    // Read to its end with acme's key, so every later check sees a finished answer.
    await readEvents(node.url, acmeAnswer, { headers: { authorization: `Bearer ${keys.acme}` } });
  });
  afterAll(async () => {
    await node?.stop();
    await store.close();
    data.remove();
  });

  it("a request without a key, with a key of the wrong shape, an unknown key or a revoked key is refused with its code", async () => {
    const none = await create(undefined);
    expect(none.status).toBe(401);
    expect(none.headers.get("www-authenticate")).toMatch(/^Bearer/);
    expect(await codeOf(none)).toBe("unauthorized");
    expect(await codeOf(await call("/v1/generations/x", undefined, { headers: { authorization: "Basic abc" } }))).toBe("invalid_api_key");
    expect(await codeOf(await create(keys.acme!.slice(0, -2) + "zz"))).toBe("invalid_api_key");
    const revoked = await create(keys.revoked);
    expect(revoked.status).toBe(401);
    expect(await codeOf(revoked)).toBe("api_key_revoked");
  });

  it("a key without the scope a route needs gets 403 forbidden, and nothing is created", async () => {
    const before = (await store.list()).length;
    const refused = await create(keys.acmeReader);
    expect(refused.status).toBe(403);
    expect(await codeOf(refused)).toBe("forbidden");
    expect(await codeOf(await call(`/v1/generations/${acmeAnswer}/cancel`, keys.acmeReader, { method: "POST", body: "{}" }))).toBe(
      "forbidden",
    );
    expect(await codeOf(await call("/metrics", keys.acme))).toBe("forbidden");
    expect((await call("/metrics", keys.admin)).status).toBe(200);
    expect((await store.list()).length).toBe(before);
  });

  it("another tenant's key cannot read, follow, poll, replay or cancel an answer: the same 404 as an id that does not exist", async () => {
    for (const path of ["", "/events", "/poll?wait_ms=0", "/timeline"]) {
      const res = await call(`/v1/generations/${acmeAnswer}${path}`, keys.beta);
      expect(res.status, path).toBe(404);
      expect(await codeOf(res)).toBe("generation_not_found");
    }
    const cancel = await call(`/v1/generations/${acmeAnswer}/cancel`, keys.beta, { method: "POST", body: "{}" });
    expect(await codeOf(cancel)).toBe("generation_not_found");
    // Nothing stored changed: the answer is still acme's, completed, with the text the model wrote.
    const view = (await (await call(`/v1/generations/${acmeAnswer}`, keys.acmeReader)).json()) as { status: string; text: string };
    expect(view).toMatchObject({ status: "completed", text: simText(request) });
  });

  it("the tenant is written into the created entry, and an admin key sees every tenant's answers", async () => {
    const read = await readEvents(node.url, acmeAnswer, { headers: { authorization: `Bearer ${keys.admin}` } });
    const created = entriesOf(read.messages)[0] as Extract<Entry, { type: "created" }>;
    expect(created.tenant).toBe("acme");
    expect((await call(`/v1/generations/${acmeAnswer}/timeline`, keys.admin)).status).toBe(200);
  });

  it("two tenants using the same Idempotency-Key get two answers of their own", async () => {
    const headers = { "idempotency-key": "order-42" };
    const a = (await (await create(keys.acme, headers)).json()) as { id: string };
    const b = (await (await create(keys.beta, headers)).json()) as { id: string };
    expect(a.id).not.toBe(b.id);
    const again = await create(keys.beta, headers);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(((await again.json()) as { id: string }).id).toBe(b.id);
  });

  it("the WebSocket checks a key on the upgrade, and a subscription to another tenant's answer gets generation_not_found", async () => {
    const url = `${node.url.replace("http", "ws")}/v1/ws`;
    expect(await upgrade(url, { authorization: `Bearer ${keys.revoked}` })).toMatchObject({ status: 401 });
    const frames = async (key: string): Promise<{ type: string; error?: { code: string } }[]> => {
      const ws = new WebSocket(url, { headers: { authorization: `Bearer ${key}` } });
      const got: { type: string; error?: { code: string } }[] = [];
      await new Promise<void>((resolve, reject) => {
        ws.on("error", reject);
        ws.on("open", () => ws.send(JSON.stringify({ type: "subscribe", sub: "s", generation: acmeAnswer })));
        ws.on("message", (data) => {
          const frame = JSON.parse(String(data)) as { type: string; error?: { code: string } };
          got.push(frame);
          if (frame.type === "end" || frame.type === "error") resolve();
        });
      });
      ws.close();
      return got;
    };
    expect((await frames(keys.beta!)).at(-1)).toMatchObject({ type: "error", error: { code: "generation_not_found" } });
    const own = await frames(keys.acme!);
    expect(own.at(-1)?.type).toBe("end");
    expect(own.filter((f) => f.type === "entry").length).toBeGreaterThan(2);
  });

  it("the OpenAI door asks for the same keys (the official client sends its apiKey as Bearer) and keeps tenants apart", async () => {
    const acme = new OpenAI({ baseURL: `${node.url}/v1`, apiKey: keys.acme!, maxRetries: 0 });
    const beta = new OpenAI({ baseURL: `${node.url}/v1`, apiKey: keys.beta!, maxRetries: 0 });
    const nobody = new OpenAI({ baseURL: `${node.url}/v1`, apiKey: "sk-not-a-lifeline-key", maxRetries: 0 });
    const ask = { model: "sim", input: "a response of acme's", max_output_tokens: 10, background: true } as const;
    await expect(nobody.responses.create(ask)).rejects.toMatchObject({ status: 401, code: "invalid_api_key" });
    const reader = new OpenAI({ baseURL: `${node.url}/v1`, apiKey: keys.acmeReader!, maxRetries: 0 });
    await expect(reader.chat.completions.create({ model: "sim", messages: [{ role: "user", content: "hi" }] })).rejects.toMatchObject({
      status: 403,
      code: "forbidden",
    });
    const created = await acme.responses.create(ask);
    await expect(beta.responses.retrieve(created.id)).rejects.toMatchObject({ status: 404, code: "generation_not_found" });
    await expect(beta.responses.cancel(created.id)).rejects.toMatchObject({ status: 404, code: "generation_not_found" });
    expect((await acme.responses.retrieve(created.id)).id).toBe(created.id);
    // The answer is still acme's to read through the native API, and was not cancelled by beta.
    expect((await call(`/v1/generations/${created.id}`, keys.acme)).status).toBe(200);
    expect((await call(`/v1/generations/${created.id}`, keys.beta)).status).toBe(404);
  });

  it("a generation started with a key comes with a read token that follows, polls, reads and cancels that one generation and nothing else", async () => {
    const created = (await (await create(keys.acme)).json()) as { id: string; token: string; tokenExpiresAt: string };
    expect(created.token).toMatch(/^llt_/);
    expect(Date.parse(created.tokenExpiresAt)).toBeGreaterThan(Date.now());
    const token = encodeURIComponent(created.token);
    // SSE with the token as a query parameter (EventSource cannot set headers), to the end of the answer.
    const events = await fetch(`${node.url}/v1/generations/${created.id}/events?token=${token}`);
    expect(events.status).toBe(200);
    expect(await events.text()).toContain("event: completed");
    expect((await fetch(`${node.url}/v1/generations/${created.id}/poll?wait_ms=0&token=${token}`)).status).toBe(200);
    expect((await call(`/v1/generations/${created.id}`, created.token)).status).toBe(200);
    // Nothing else: another generation, the timeline, a new generation.
    expect(await codeOf(await fetch(`${node.url}/v1/generations/${acmeAnswer}/events?token=${token}`))).toBe("generation_not_found");
    expect(await codeOf(await call(`/v1/generations/${created.id}/timeline`, created.token))).toBe("forbidden");
    expect(await codeOf(await create(created.token))).toBe("forbidden");
    // Over the WebSocket: the token on the upgrade opens a subscription to its generation only.
    const ws = new WebSocket(`${node.url.replace("http", "ws")}/v1/ws?token=${token}`);
    const frames: { type: string; sub?: string; error?: { code: string } }[] = [];
    await new Promise<void>((resolve, reject) => {
      ws.on("error", reject);
      ws.on("open", () => {
        ws.send(JSON.stringify({ type: "subscribe", sub: "other", generation: acmeAnswer }));
        ws.send(JSON.stringify({ type: "subscribe", sub: "own", generation: created.id }));
      });
      ws.on("message", (data) => {
        frames.push(JSON.parse(String(data)) as (typeof frames)[number]);
        if (frames.some((f) => f.sub === "own" && f.type === "end") && frames.some((f) => f.sub === "other")) resolve();
      });
    });
    ws.close();
    expect(frames.find((f) => f.sub === "other")).toMatchObject({ type: "error", error: { code: "generation_not_found" } });
    expect(frames.filter((f) => f.sub === "own" && f.type === "entry").length).toBeGreaterThan(2);
  });

  it("a read token that expired or was forged is refused with its code; a server renews it with its key", async () => {
    const started = (await (await create(keys.acme)).json()) as { id: string; token: string };
    // A token the same deployment signed, but ten minutes ago with a ten-minute life.
    const expired = (await new ReadTokens(store).issue(started.id, "acme", Date.now() - 11 * 60_000)).token;
    const expiredAnswer = await fetch(`${node.url}/v1/generations/${started.id}/events?token=${encodeURIComponent(expired)}`);
    expect(expiredAnswer.status).toBe(401);
    expect(await codeOf(expiredAnswer)).toBe("token_expired");
    const [body, signature] = started.token.slice(4).split(".") as [string, string];
    const otherGeneration = Buffer.from(
      JSON.stringify({ ...JSON.parse(Buffer.from(body, "base64url").toString()), g: acmeAnswer }),
    ).toString("base64url");
    expect(await codeOf(await call(`/v1/generations/${acmeAnswer}`, `llt_${otherGeneration}.${signature}`))).toBe("invalid_token");
    expect(await codeOf(await fetch(`${node.url}/v1/generations/${started.id}?token=not-a-token`))).toBe("invalid_token");
    // Renewal: the server's key asks for a new token; another tenant's key cannot.
    const renewed = await call(`/v1/generations/${started.id}/token`, keys.acmeReader, { method: "POST", body: "{}" });
    expect(renewed.status).toBe(200);
    const { token } = (await renewed.json()) as { token: string };
    expect((await call(`/v1/generations/${started.id}`, token)).status).toBe(200);
    expect(await codeOf(await call(`/v1/generations/${started.id}/token`, keys.beta, { method: "POST", body: "{}" }))).toBe(
      "generation_not_found",
    );
  });

  it("rotating the signing key drops no holder: tokens of the old key still open their generation, and the new key's tokens are accepted at once", async () => {
    const started = (await (await create(keys.acme)).json()) as { id: string; token: string };
    await store.addSigningKey({ ...newSigningKey(new Date(Date.now() + 1000)) });
    const fromNewKey = (await new ReadTokens(store).issue(started.id, "acme")).token;
    expect(fromNewKey.split(".")[0]).not.toBe(started.token.split(".")[0]);
    expect((await call(`/v1/generations/${started.id}`, started.token)).status).toBe(200);
    expect((await call(`/v1/generations/${started.id}`, fromNewKey)).status).toBe(200);
  });

  it("a read token cancels its generation, and that generation only", async () => {
    const started = (await (await create(keys.acme, {})).json()) as { id: string; token: string };
    const cancel = await call(`/v1/generations/${started.id}/cancel`, started.token, { method: "POST", body: "{}" });
    expect([202, 409]).toContain(cancel.status); // 409 when the short answer already ended
  });

  it("a read token renewed with a key that may only read cannot cancel: it opens no more than the key", async () => {
    const started = (await (await create(keys.acme)).json()) as { id: string };
    expect(await codeOf(await call(`/v1/generations/${started.id}/cancel`, keys.acmeReader, { method: "POST", body: "{}" }))).toBe(
      "forbidden",
    );
    const renewed = await call(`/v1/generations/${started.id}/token`, keys.acmeReader, { method: "POST", body: "{}" });
    const { token } = (await renewed.json()) as { token: string };
    expect((await call(`/v1/generations/${started.id}`, token)).status).toBe(200);
    for (const path of [`/v1/generations/${started.id}/cancel`, `/v1/responses/${started.id}/cancel`])
      expect(await codeOf(await call(path, token, { method: "POST", body: "{}" })), path).toBe("forbidden");
  });

  it("health and the pages need no key", async () => {
    for (const path of ["/healthz", "/readyz", "/", "/client.js"]) expect((await call(path, undefined)).status, path).toBe(200);
  });
});

describe("safe defaults", () => {
  it("a gateway on an address other than loopback refuses to start without keys, and says why", async () => {
    const data = tempDir();
    try {
      const config = loadConfig(
        {
          LIFELINE_ENGINE: "sqlite",
          LIFELINE_DATA_DIR: data.path,
          LIFELINE_HOST: "0.0.0.0",
          LIFELINE_PORT: "0",
          LIFELINE_LOG_LEVEL: "silent",
        },
        {},
      );
      await expect(startNode(config, { gateway: true, worker: true })).rejects.toThrow(
        /refusing to serve 0\.0\.0\.0 without API keys.*lifeline keys create/,
      );
    } finally {
      data.remove();
    }
  });

  it("loopback is 127.0.0.0/8, ::1 and localhost, and nothing else", () => {
    for (const host of ["127.0.0.1", "127.8.9.10", "::1", "localhost"]) expect(isLoopback(host), host).toBe(true);
    for (const host of ["0.0.0.0", "::", "10.0.0.1", "192.168.1.2", "127.0.0.1.example.com", "localhost.example"])
      expect(isLoopback(host), host).toBe(false);
  });
});
