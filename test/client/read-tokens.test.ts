import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { createClient, LifelineClientError, type TransportName } from "../../src/client/index.ts";
import type { Scope } from "../../src/core/api-keys.ts";
import type { GenerationRequest } from "../../src/core/entries.ts";
import { KeyRing } from "../../src/engine/keys/key-ring.ts";
import { SqliteKeyStore } from "../../src/engine/keys/sqlite.ts";
import { READ_TOKEN_TTL_MS, ReadTokens } from "../../src/gateway/auth/read-tokens.ts";
import { startInProcess } from "../support/in-process.ts";
import { log, sse, startScriptedServer } from "./support/scripted-server.ts";
import { simText } from "../support/sim-answer.ts";
import { startTcpProxy, type TcpProxy } from "../support/tcp-proxy.ts";
import { tempDir } from "../support/temp-dir.ts";
import { until } from "../support/waits.ts";
import { oneToN, record, simAsk } from "./support/follow-record.ts";

type Node = Awaited<ReturnType<typeof startInProcess>>;

const TRANSPORTS: readonly TransportName[] = ["sse", "websocket", "long-poll"];
/** What each transport's connections start with, to find them at the proxy. */
const MARKER: Record<TransportName, string> = { sse: "/events", websocket: "/v1/ws", "long-poll": "/poll" };

describe("the SDK follows with read tokens in a deployment with keys", () => {
  const data = tempDir();
  let node: Node;
  let proxy: TcpProxy;
  let store: SqliteKeyStore;
  let serverKey: string;

  beforeAll(async () => {
    store = new SqliteKeyStore({ dataDir: data.path });
    const scopes: Scope[] = ["generations:create", "generations:read"];
    serverKey = (await new KeyRing(store).create("acme", scopes)).key;
    // 40 tokens a second: a 200-token answer runs for 5 s, long enough to cut in the middle.
    node = await startInProcess({ LIFELINE_ENGINE: "sqlite", LIFELINE_DATA_DIR: data.path, LIFELINE_SIM_TOKENS_PER_SECOND: "40" });
    proxy = await startTcpProxy(Number(new URL(node.url).port));
  });
  afterAll(async () => {
    await proxy?.close();
    await node?.stop();
    await store?.close();
    data.remove();
  });

  /** What the page's own server does: starts a generation with its key and hands the page `{id, token}`. */
  const serverStarts = async (request: GenerationRequest): Promise<{ id: string; token: string }> => {
    const res = await fetch(`${node.url}/v1/generations`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${serverKey}` },
      body: JSON.stringify(request),
    });
    expect(res.status).toBe(201);
    return (await res.json()) as { id: string; token: string };
  };
  /** What the page's server answers when the page asks for a new token. */
  const serverRenews = async (id: string): Promise<string> => {
    const res = await fetch(`${node.url}/v1/generations/${id}/token`, {
      method: "POST",
      headers: { authorization: `Bearer ${serverKey}` },
    });
    expect(res.status).toBe(200);
    return ((await res.json()) as { token: string }).token;
  };
  /** A client as a browser page has one: no key, only the tokens its server gives it, through the proxy. */
  const pageClient = (transport: TransportName, renewals: string[]) =>
    createClient({
      baseUrl: `http://127.0.0.1:${proxy.port}`,
      transports: [transport],
      WebSocket,
      reconnect: { initialMs: 20, maxMs: 200 },
      readToken: (id) => {
        renewals.push(id);
        return serverRenews(id);
      },
    });

  for (const transport of TRANSPORTS) {
    it(`over ${transport}, a page's client with only a read token follows the answer to its exact end`, async () => {
      const { request, expected } = simAsk(`a token over ${transport}`, 30);
      const { id, token } = await serverStarts(request);
      const renewals: string[] = [];
      const client = pageClient(transport, renewals);
      try {
        const follow = client.follow(id, { token });
        const seen = await record(follow);
        expect(seen.text).toBe(expected);
        expect(seen.status).toBe("completed");
        expect(seen.offsets).toEqual(oneToN(seen.offsets.length));
        expect(follow.transport).toBe(transport);
        expect(renewals).toEqual([]); // the token it was given was enough
      } finally {
        client.close();
      }
    });

    it(`over ${transport}, a token that expires mid-follow is renewed through readToken and the follow ends exact`, async () => {
      const { request, expected } = simAsk(`a token that expires over ${transport}`, 200);
      const { id } = await serverStarts(request);
      // Signed by the deployment, with three seconds of its life left.
      const shortLived = (await new ReadTokens(store).issue(id, "acme", Date.now() - READ_TOKEN_TTL_MS + 3000)).token;
      const renewals: string[] = [];
      const client = pageClient(transport, renewals);
      try {
        const follow = client.follow(id, { token: shortLived });
        const offsets: number[] = [];
        const seen = (async () => {
          for await (const event of follow) if (event.type === "entry") offsets.push(event.entry.offset);
          return follow.done;
        })();
        await until(() => offsets.length >= 3, 30_000, "the first entries");
        // Silence the link, let the token expire, then cut it: the follow comes back with a dead token.
        expect(proxy.blackhole(MARKER[transport])).toBeGreaterThan(0);
        const before = offsets.length;
        await until(
          async () => (await fetch(`${node.url}/v1/generations/${id}?token=${encodeURIComponent(shortLived)}`)).status === 401,
          30_000,
          "the token's expiry",
        );
        expect(renewals).toEqual([]);
        expect(proxy.cut(MARKER[transport])).toBeGreaterThan(0);
        const final = await seen;
        expect(final.text).toBe(expected);
        expect(final.status).toBe("completed");
        expect(offsets).toEqual(oneToN(offsets.length)); // nothing lost, nothing twice
        expect(offsets.length).toBeGreaterThan(before);
        expect(renewals).toEqual([id]); // asked once, for this generation
      } finally {
        client.close();
      }
    });

    it(`over ${transport}, a cut connection resumes with the same token, exact`, async () => {
      const { request, expected } = simAsk(`a cut over ${transport}`, 120);
      const { id, token } = await serverStarts(request);
      const renewals: string[] = [];
      const client = pageClient(transport, renewals);
      try {
        const follow = client.follow(id, { token });
        const offsets: number[] = [];
        const seen = (async () => {
          for await (const event of follow) if (event.type === "entry") offsets.push(event.entry.offset);
          return follow.done;
        })();
        await until(() => offsets.length >= 3, 30_000, "the first entries");
        expect(proxy.cut(MARKER[transport])).toBeGreaterThan(0);
        const final = await seen;
        expect(final.text).toBe(expected);
        expect(offsets).toEqual(oneToN(offsets.length));
        expect(renewals).toEqual([]);
      } finally {
        client.close();
      }
    });
  }

  it("answers of several tokens share one WebSocket, opened without credentials", async () => {
    const asks = [simAsk("first of three", 20), simAsk("second of three", 20), simAsk("third of three", 20)];
    const started = await Promise.all(asks.map((ask) => serverStarts(ask.request)));
    const before = proxy.connections(MARKER.websocket).accepted;
    const client = pageClient("websocket", []);
    try {
      const texts = await Promise.all(started.map(({ id, token }) => client.follow(id, { token }).done.then((final) => final.text)));
      expect(texts).toEqual(asks.map((ask) => ask.expected));
      expect(proxy.connections(MARKER.websocket).accepted - before).toBe(1);
    } finally {
      client.close();
    }
  });

  it("a client with a key starts with it, follows with the token the answer came with, and gets a token for an answer it did not start", async () => {
    const client = createClient({ baseUrl: node.url, apiKey: serverKey, WebSocket, transports: ["websocket", "sse"] });
    try {
      const { request, expected } = simAsk("a server-side script", 25);
      const started = await client.start(request);
      expect(started.token).toMatch(/^llt_/);
      expect(Date.parse(started.tokenExpiresAt ?? "")).toBeGreaterThan(Date.now());
      expect((await client.follow(started.id).done).text).toBe(expected);
      const other = await serverStarts(simAsk("started elsewhere", 10).request);
      expect((await client.follow(other.id).done).text).toBe(simText(simAsk("started elsewhere", 10).request));
      await client.cancel(other.id); // already finished: not an error
    } finally {
      client.close();
    }
  });

  it("a client without a key or tokens gets 401 unauthorized from start; a token its application cannot renew ends the follow with invalid_token", async () => {
    const bare = createClient({ baseUrl: node.url });
    await expect(bare.start(simAsk("no key", 5).request)).rejects.toMatchObject({ code: "unauthorized", status: 401 });
    const { id, token } = await serverStarts(simAsk("a forged renewal", 10).request);
    const forged = `${token.slice(0, -4)}AAAA`;
    for (const transport of TRANSPORTS) {
      const client = createClient({ baseUrl: node.url, transports: [transport], WebSocket, readToken: () => forged });
      try {
        const error = await client.follow(id, { token: forged }).done.catch((e: unknown) => e);
        expect(error, transport).toBeInstanceOf(LifelineClientError);
        expect((error as LifelineClientError).code, transport).toBe("invalid_token");
      } finally {
        client.close();
      }
    }
  });
});

describe("getting a read token is retried like a connection", () => {
  it("a gateway that cannot give a token for a while (503 on POST /token) is asked again with backoff, and the follow ends exact", async () => {
    const token = "llt_scripted";
    let tokenRequests = 0;
    const server = await startScriptedServer((_n, req, res) => {
      if (req.method === "POST" && req.url === "/v1/generations/gen_1/token") {
        // More refusals than one request's own retries: the follow itself must try again.
        if (++tokenRequests <= 7) {
          res.writeHead(503, { "content-type": "application/json" });
          res.end(JSON.stringify({ error: { code: "engine_unavailable", message: "not now" } }));
          return;
        }
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ id: "gen_1", token, tokenExpiresAt: new Date(Date.now() + 600_000).toISOString() }));
        return;
      }
      if (req.url === `/v1/generations/gen_1/events?token=${token}`) {
        sse(res, [log.created(), log.started(2), log.delta(3, "Hello"), log.completed(4)], true);
        return;
      }
      res.writeHead(404, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { code: "not_found", message: req.url } }));
    });
    const client = createClient({
      baseUrl: server.url,
      apiKey: "llk_scripted",
      transports: ["sse"],
      reconnect: { initialMs: 5, maxMs: 20 },
    });
    try {
      const final = await client.follow("gen_1").done;
      expect(final).toMatchObject({ text: "Hello", status: "completed" });
      expect(tokenRequests).toBe(8);
      const asked = server.requests.filter((r) => r.url.includes("/token"));
      expect(asked.every((r) => r.headers.authorization === "Bearer llk_scripted")).toBe(true);
      // The key asked for tokens and went nowhere else.
      expect(server.requests.filter((r) => !r.url.includes("/token")).every((r) => r.headers.authorization === undefined)).toBe(true);
    } finally {
      client.close();
      await server.close();
    }
  });
});
