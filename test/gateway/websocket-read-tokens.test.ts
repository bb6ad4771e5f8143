import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { KeyRing } from "../../src/engine/keys/key-ring.ts";
import { SqliteKeyStore } from "../../src/engine/keys/sqlite.ts";
import { ReadTokens } from "../../src/gateway/auth/read-tokens.ts";
import { startInProcess } from "../support/in-process.ts";
import { simAsk } from "../support/sim-answer.ts";
import { tempDir } from "../support/temp-dir.ts";

type Frame = { type: string; sub?: string; entry?: { type: string; text?: string }; error?: { code: string } };

describe("WebSocket subscriptions that carry their own read token", () => {
  const data = tempDir();
  let node: Awaited<ReturnType<typeof startInProcess>>;
  let store: SqliteKeyStore;
  let key: string;
  let otherTenantKey: string;

  beforeAll(async () => {
    store = new SqliteKeyStore({ dataDir: data.path });
    const ring = new KeyRing(store);
    key = (await ring.create("acme", ["generations:create", "generations:read"])).key;
    otherTenantKey = (await ring.create("beta", ["generations:create", "generations:read"])).key;
    node = await startInProcess({ LIFELINE_ENGINE: "sqlite", LIFELINE_DATA_DIR: data.path });
  });
  afterAll(async () => {
    await node?.stop();
    await store?.close();
    data.remove();
  });

  const start = async (withKey: string, content: string): Promise<{ id: string; token: string; expected: string }> => {
    const { request, expected } = simAsk(content, 15);
    const res = await fetch(`${node.url}/v1/generations`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${withKey}` },
      body: JSON.stringify(request),
    });
    return { ...((await res.json()) as { id: string; token: string }), expected };
  };

  /** Opens a socket without credentials, sends `frames`, and collects until every named sub has ended or erred. */
  const exchange = async (frames: object[], subs: string[]): Promise<Frame[]> => {
    const ws = new WebSocket(`${node.url.replace("http", "ws")}/v1/ws`);
    const got: Frame[] = [];
    await new Promise<void>((resolve, reject) => {
      ws.on("error", reject);
      ws.on("open", () => frames.forEach((frame) => ws.send(JSON.stringify(frame))));
      ws.on("message", (raw) => {
        got.push(JSON.parse(String(raw)) as Frame);
        const over = (sub: string): boolean => got.some((f) => f.sub === sub && (f.type === "end" || f.type === "error"));
        if (subs.every(over)) resolve();
      });
    });
    ws.close();
    return got;
  };
  const textOf = (frames: Frame[], sub: string): string =>
    frames
      .filter((f) => f.sub === sub && f.entry?.type === "delta")
      .map((f) => f.entry?.text ?? "")
      .join("");
  const errorOf = (frames: Frame[], sub: string): string | undefined =>
    frames.find((f) => f.sub === sub && f.type === "error")?.error?.code;

  it("one connection opened without credentials follows two tenants' answers, each by its own token", async () => {
    const a = await start(key, "acme's answer");
    const b = await start(otherTenantKey, "beta's answer");
    const frames = await exchange(
      [
        { type: "subscribe", sub: "a", generation: a.id, token: a.token },
        { type: "subscribe", sub: "b", generation: b.id, token: b.token },
      ],
      ["a", "b"],
    );
    expect(textOf(frames, "a")).toBe(a.expected);
    expect(textOf(frames, "b")).toBe(b.expected);
    expect(frames.filter((f) => f.type === "error")).toEqual([]);
  });

  it("on such a connection a subscription without a token is unauthorized, with a wrong one invalid_token, an expired one token_expired, another generation's token generation_not_found", async () => {
    const a = await start(key, "refusals");
    const b = await start(key, "the other one");
    const expired = (await new ReadTokens(store).issue(a.id, "acme", Date.now() - 11 * 60_000)).token;
    const frames = await exchange(
      [
        { type: "subscribe", sub: "none", generation: a.id },
        { type: "subscribe", sub: "forged", generation: a.id, token: `${a.token.slice(0, -4)}AAAA` },
        { type: "subscribe", sub: "expired", generation: a.id, token: expired },
        { type: "subscribe", sub: "other", generation: a.id, token: b.token },
        { type: "subscribe", sub: "own", generation: a.id, token: a.token },
      ],
      ["none", "forged", "expired", "other", "own"],
    );
    expect(errorOf(frames, "none")).toBe("unauthorized");
    expect(errorOf(frames, "forged")).toBe("invalid_token");
    expect(errorOf(frames, "expired")).toBe("token_expired");
    expect(errorOf(frames, "other")).toBe("generation_not_found");
    expect(errorOf(frames, "own")).toBeUndefined();
    expect(textOf(frames, "own")).toBe(a.expected);
    // The refused subscriptions got nothing of the answer.
    expect(frames.filter((f) => f.type === "entry" && f.sub !== "own")).toEqual([]);
  });

  it("a connection opened without credentials that holds no subscription is closed with 4001; one opened with a key is not", async () => {
    const fast = await startInProcess({ LIFELINE_ENGINE: "sqlite", LIFELINE_DATA_DIR: data.path, LIFELINE_HEARTBEAT_MS: "1000" });
    try {
      const url = `${fast.url.replace("http", "ws")}/v1/ws`;
      const opened = (ws: WebSocket): Promise<void> => new Promise((resolve, reject) => ws.on("open", resolve).on("error", reject));
      const withKey = new WebSocket(url, { headers: { authorization: `Bearer ${key}` } });
      const without = new WebSocket(url);
      await Promise.all([opened(withKey), opened(without)]);
      const code = await new Promise<number>((resolve) => without.on("close", resolve));
      expect(code).toBe(4001);
      // The same heartbeats passed over the connection with a key: it stays.
      expect(withKey.readyState).toBe(WebSocket.OPEN);
      withKey.close();
    } finally {
      await fast.stop();
    }
  });

  it("a key revoked while its connection is open opens no more subscriptions on it", async () => {
    const ring = new KeyRing(store);
    const made = await ring.create("acme", ["generations:create", "generations:read"]);
    const a = await start(made.key, "before the revocation");
    const b = await start(made.key, "after the revocation");
    const ws = new WebSocket(`${node.url.replace("http", "ws")}/v1/ws`, { headers: { authorization: `Bearer ${made.key}` } });
    const got: Frame[] = [];
    const over = (sub: string): Promise<void> =>
      new Promise((resolve) =>
        ws.on("message", () => {
          if (got.some((f) => f.sub === sub && (f.type === "end" || f.type === "error"))) resolve();
        }),
      );
    ws.on("message", (raw) => got.push(JSON.parse(String(raw)) as Frame));
    await new Promise((resolve, reject) => ws.on("open", resolve).on("error", reject));
    ws.send(JSON.stringify({ type: "subscribe", sub: "a", generation: a.id }));
    await over("a");
    expect(textOf(got, "a")).toBe(a.expected);
    await store.revoke(made.stored.id, new Date().toISOString());
    ws.send(JSON.stringify({ type: "subscribe", sub: "b", generation: b.id }));
    await over("b");
    ws.close();
    expect(errorOf(got, "b")).toBe("api_key_revoked");
    expect(got.filter((f) => f.sub === "b" && f.type === "entry")).toEqual([]);
  });
});
