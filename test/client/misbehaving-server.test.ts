import { afterEach, describe, expect, it } from "vitest";
import {
  createClient,
  LifelineClientError,
  type WebSocketConstructor,
  type WebSocketEventLike,
  type WebSocketLike,
} from "../../src/client/index.ts";
import { record } from "./support/follow-record.ts";
import { jsonError, log, pollAnswer, sse, startScriptedServer, type Script, type ScriptedServer } from "./support/scripted-server.ts";

let server: ScriptedServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const ID = "gen_scripted";
const fast = { initialMs: 5, maxMs: 20 };
const serve = async (script: Script) => {
  server = await startScriptedServer(script);
  return createClient({ baseUrl: server.url, transports: ["sse"], reconnect: fast, heartbeatTimeoutMs: 300 });
};
const lastEventIds = (): (string | undefined)[] => (server?.requests ?? []).map((r) => r.headers["last-event-id"] as string | undefined);

describe("the follower against a misbehaving gateway", () => {
  it("repeated entries are dropped, and a gap reconnects from the cursor instead of applying out of order", async () => {
    const client = await serve((n, _req, res) => {
      if (n === 1) sse(res, [log.created(), log.started(2), log.delta(3, "a"), log.started(2), log.delta(3, "a"), log.delta(5, "X")]);
      else sse(res, [log.delta(4, "b"), log.delta(5, "c"), log.completed(6)], true);
    });
    const seen = await record(client.follow(ID));
    expect(seen.offsets).toEqual([1, 2, 3, 4, 5, 6]);
    expect(seen.text).toBe("abc");
    expect(lastEventIds()).toEqual([undefined, "c3"]); // the opaque cursor, sent back as it came
    expect(seen.states).toEqual(["connecting", "live", "reconnecting", "resumed", "ended"]);
  });

  it("reset drops the text, is yielded, and the log is rebuilt from offset 1", async () => {
    const client = await serve((_n, _req, res) =>
      sse(res, [log.created(), log.delta(2, "old"), "reset", log.created(), log.delta(2, "new"), log.completed(3)], true),
    );
    const follow = client.follow(ID);
    const seen = await record(follow);
    expect(seen.offsets).toEqual([1, 2, 0, 1, 2, 3]);
    expect(seen.text).toBe("new");
    expect((await follow.done).entries.map((e) => e.offset)).toEqual([1, 2, 3]);
  });

  it("a rewind past a resumed cursor rebuilds the answer from the start", async () => {
    const client = await serve((n, _req, res) => {
      if (n === 1) sse(res, [log.rewind(4, 2)]);
      else
        sse(
          res,
          [log.created(), log.delta(2, "keep"), log.delta(3, " drop"), log.rewind(4, 2), log.delta(5, " new"), log.completed(6)],
          true,
        );
    });
    const seen = await record(client.follow(ID, { cursor: "c3", text: "keep drop" }));
    expect(seen.text).toBe("keep new");
    expect(seen.offsets).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(lastEventIds()).toEqual(["c3", undefined]);
  });

  it("a stream that goes silent is dropped by the heartbeat watchdog and resumed", async () => {
    const client = await serve((n, _req, res) => {
      if (n === 1)
        sse(res, [log.created(), log.delta(2, "still ")]); // then nothing, not even a ping
      else sse(res, [log.delta(3, "here"), log.completed(4)], true);
    });
    const seen = await record(client.follow(ID));
    expect(seen.text).toBe("still here");
    expect(lastEventIds()).toEqual([undefined, "c2"]);
  });

  it("5xx and 429 are retried; the follow then succeeds", async () => {
    const client = await serve((n, _req, res) => {
      if (n === 1) jsonError(res, 503, "engine_unavailable");
      else if (n === 2) jsonError(res, 429, "too_many_requests");
      else sse(res, [log.created(), log.delta(2, "ok"), log.completed(3)], true);
    });
    const seen = await record(client.follow(ID));
    expect(seen.text).toBe("ok");
    expect(server?.requests).toHaveLength(3);
  });

  it("a 404 ends the follow with the server's code, after one request", async () => {
    const client = await serve((_n, _req, res) => jsonError(res, 404, "generation_not_found"));
    const follow = client.follow(ID);
    const error: unknown = await follow.done.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LifelineClientError);
    expect((error as LifelineClientError).code).toBe("generation_not_found");
    await expect(record(follow)).rejects.toBe(error);
    expect(server?.requests).toHaveLength(1);
  });

  it("start() retries a 5xx with the same generated Idempotency-Key", async () => {
    const client = await serve((n, _req, res) => {
      if (n === 1) return jsonError(res, 502, "bad_gateway");
      res.writeHead(201, { "content-type": "application/json" });
      res.end(JSON.stringify({ id: ID, status: "queued" }));
    });
    expect(await client.start({ model: "sim", messages: [{ role: "user", content: "hi" }] })).toEqual({ id: ID, status: "queued" });
    const keys = (server?.requests ?? []).map((r) => r.headers["idempotency-key"]);
    expect(keys).toHaveLength(2);
    expect(keys[0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(keys[1]).toBe(keys[0]);
  });

  it("a WebSocket that cannot connect three times in a row hands over to SSE", async () => {
    let attempts = 0;
    /** A WebSocket whose every connection fails, as behind a proxy that refuses upgrades. */
    class RefusedWebSocket implements WebSocketLike {
      readyState = 0;
      readonly #listeners = new Map<string, ((event: WebSocketEventLike) => void)[]>();
      constructor(_url: string) {
        attempts += 1;
        setTimeout(() => {
          this.readyState = 3;
          for (const type of ["error", "close"]) for (const listener of this.#listeners.get(type) ?? []) listener({ type });
        }, 1);
      }
      send(): void {}
      close(): void {}
      addEventListener(type: string, listener: (event: WebSocketEventLike) => void): void {
        this.#listeners.set(type, [...(this.#listeners.get(type) ?? []), listener]);
      }
    }
    server = await startScriptedServer((_n, _req, res) => sse(res, [log.created(), log.delta(2, "via sse"), log.completed(3)], true));
    const client = createClient({
      baseUrl: server.url,
      WebSocket: RefusedWebSocket satisfies WebSocketConstructor,
      transports: ["websocket", "sse"],
      reconnect: fast,
    });
    const seen = await record(client.follow(ID));
    expect(seen.text).toBe("via sse");
    expect(attempts).toBe(3);
    expect(server.requests).toHaveLength(1);
  });

  describe("over long-poll", () => {
    const servePolls = async (script: Script) => {
      server = await startScriptedServer(script);
      return createClient({ baseUrl: server.url, transports: ["long-poll"], reconnect: fast, heartbeatTimeoutMs: 300 });
    };

    it("sends each response's cursor back; repeats are dropped and a gap opens a new session from the follower's cursor", async () => {
      const client = await servePolls((n, _req, res) => {
        if (n === 1) pollAnswer(res, [log.created(), log.started(2)]);
        else if (n === 2) pollAnswer(res, [log.started(2), log.delta(3, "a"), log.delta(5, "X")]);
        else pollAnswer(res, [log.delta(4, "b"), log.delta(5, "c"), log.completed(6)], true);
      });
      const seen = await record(client.follow(ID));
      expect(seen.offsets).toEqual([1, 2, 3, 4, 5, 6]);
      expect(seen.text).toBe("abc");
      expect(lastEventIds()).toEqual([undefined, "c2", "c3"]);
      expect(server?.requests.every((r) => r.url.includes("/poll?wait_ms=150"))).toBe(true); // half the watchdog
    });

    it("a body that is not a poll response is dropped and asked for again; a reset rebuilds the text", async () => {
      const client = await servePolls((n, _req, res) => {
        if (n === 1) pollAnswer(res, [log.created(), log.delta(2, "old")]);
        else if (n === 2) res.writeHead(200, { "content-type": "application/json" }).end('{"events":"nope"}');
        else if (n === 3) res.writeHead(200, { "content-type": "text/html" }).end("<html>captive portal</html>");
        else pollAnswer(res, ["reset", log.created(), log.delta(2, "new"), log.completed(3)], true);
      });
      const seen = await record(client.follow(ID));
      expect(seen.text).toBe("new");
      expect(seen.offsets).toEqual([1, 2, 0, 1, 2, 3]);
      expect(lastEventIds()).toEqual([undefined, "c2", "c2", "c2"]);
    });

    it("a 404 from the gateway ends the follow after one request; 204 ends it as seen through the status", async () => {
      const missing = await servePolls((_n, _req, res) => jsonError(res, 404, "generation_not_found"));
      expect(((await missing.follow(ID).done.catch((e: unknown) => e)) as LifelineClientError).code).toBe("generation_not_found");
      expect(server?.requests).toHaveLength(1);
      await server?.close();
      const ended = await servePolls((_n, req, res) => {
        if ((req.url ?? "").includes("/poll")) return void res.writeHead(204).end();
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ id: ID, status: "completed" }));
      });
      const final = await ended.follow(ID, { cursor: "c9", text: "all of it" }).done;
      expect(final).toMatchObject({ text: "all of it", status: "completed" });
    });
  });
});

// Type-checked, not run: the browser's own WebSocket class fits the `WebSocket` option as it is.
export type BrowserWebSocketFits = typeof globalThis.WebSocket extends WebSocketConstructor ? true : never;
const _browserWebSocketFits: BrowserWebSocketFits = true;
