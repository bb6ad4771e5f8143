import { connect, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { loadConfig } from "../../src/cli/config.ts";
import { startNode } from "../../src/cli/node.ts";
import type { Entry } from "../../src/core/entries.ts";
import { ERROR_CODES } from "../../src/core/errors.ts";
import { WS_PATH } from "../../src/core/wire.ts";
import { startInProcess } from "../support/in-process.ts";
import { readEvents } from "../support/sse-client.ts";

/*
 * Whatever refuses a request — a route, the body parser, the router, Node's HTTP parser, a gateway
 * shutting down — answers in the API's one shape, `{"error":{"code","message"}}`, with a code of
 * the registry and its status. And a client's bytes are never changed without a word.
 */

interface RawAnswer {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

/** Reads one HTTP/1.1 response with a content-length from `socket`. */
function readAnswer(socket: Socket): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    let buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      buffer = Buffer.concat([buffer, chunk]);
      const end = buffer.indexOf("\r\n\r\n");
      if (end < 0) return;
      const [statusLine = "", ...lines] = buffer.subarray(0, end).toString("latin1").split("\r\n");
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(":");
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      const length = Number(headers["content-length"] ?? 0);
      if (buffer.length < end + 4 + length) return;
      socket.off("data", onData);
      socket.off("error", reject);
      resolve({ status: Number(statusLine.split(" ")[1]), headers, body: buffer.subarray(end + 4, end + 4 + length).toString("utf8") });
    };
    socket.on("data", onData);
    socket.once("error", reject);
  });
}

async function open(base: string): Promise<Socket> {
  const { hostname, port } = new URL(base);
  const socket = connect(Number(port), hostname);
  await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
  return socket;
}

/** Sends `request` byte for byte on a fresh connection and reads the answer. */
async function rawRequest(base: string, request: Buffer | string): Promise<RawAnswer> {
  const socket = await open(base);
  try {
    const answer = readAnswer(socket);
    socket.write(request);
    return await answer;
  } finally {
    socket.destroy();
  }
}

/** A POST of `body` (bytes as they are) to `path`. */
function post(path: string, body: Buffer, headers: Record<string, string> = {}): Buffer {
  const head = [
    `POST ${path} HTTP/1.1`,
    "host: lifeline.test",
    "content-type: application/json",
    `content-length: ${body.length}`,
    "connection: close",
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ];
  return Buffer.concat([Buffer.from(`${head.join("\r\n")}\r\n\r\n`, "latin1"), body]);
}

const get = (path: string, headers: Record<string, string> = {}): string =>
  [
    `GET ${path} HTTP/1.1`,
    "host: lifeline.test",
    "connection: close",
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    "",
    "",
  ].join("\r\n");

/** The answer is exactly the API's error shape, with `code` and the status the registry gives it. */
function expectError(answer: RawAnswer, code: keyof typeof ERROR_CODES): void {
  expect({ status: answer.status, body: JSON.parse(answer.body) as unknown }).toEqual({
    status: ERROR_CODES[code].status,
    body: { error: { code, message: expect.any(String) } },
  });
  expect(answer.headers["content-type"]).toMatch(/^application\/json/);
}

/** A prompt body with `content` spliced in as raw bytes between the quotes. */
function promptWith(content: Buffer): Buffer {
  return Buffer.concat([Buffer.from('{"model":"sim","max_tokens":3,"messages":[{"role":"user","content":"'), content, Buffer.from('"}]}')]);
}

describe("request errors in the API's shape", () => {
  let node: Awaited<ReturnType<typeof startInProcess>>;
  beforeAll(async () => {
    node = await startInProcess();
  });
  afterAll(async () => {
    await node.stop();
  });

  it("a body with invalid UTF-8 is refused with invalid_utf8 and creates nothing", async () => {
    const broken = [
      Buffer.from([0xff, 0xfe]), // bytes that are never UTF-8
      Buffer.from([0x68, 0x69, 0xc3]), // a sequence cut short
      Buffer.from([0xc0, 0xaf]), // an overlong encoding of "/"
      Buffer.from([0xed, 0xa0, 0x80]), // a UTF-16 surrogate encoded as UTF-8
    ];
    for (const bytes of broken) {
      expectError(await rawRequest(node.url, post("/v1/generations", promptWith(bytes))), "invalid_utf8");
    }
    // Nothing was stored under the refused request's idempotency key: a valid retry creates the generation.
    const key = `utf8-${process.pid}-${Date.now()}`;
    expectError(
      await rawRequest(node.url, post("/v1/generations", promptWith(Buffer.from([0xff])), { "idempotency-key": key })),
      "invalid_utf8",
    );
    const created = await rawRequest(node.url, post("/v1/generations", promptWith(Buffer.from("ok")), { "idempotency-key": key }));
    expect(created.status).toBe(201);
    expect(created.headers["idempotent-replayed"]).toBeUndefined();
  });

  it("a body in valid UTF-8 reaches the log byte for byte", async () => {
    const content = "héllo € 𝄞 日本";
    const created = await rawRequest(node.url, post("/v1/generations", promptWith(Buffer.from(content, "utf8"))));
    expect(created.status).toBe(201);
    const { id } = JSON.parse(created.body) as { id: string };
    const first = JSON.parse((await readEvents(node.url, id)).messages[0]!.data) as Entry;
    expect(first.type === "created" ? first.request.messages[0]?.content : undefined).toBe(content);
  });

  it("a WebSocket text frame with invalid UTF-8 closes the connection with 1007", async () => {
    const ws = new WebSocket(`${node.url.replace(/^http/, "ws")}${WS_PATH}`);
    await new Promise<void>((resolve, reject) => ws.once("open", resolve).once("error", reject));
    const closed = new Promise<number>((resolve) => ws.once("close", (code: number) => resolve(code)));
    ws.on("error", () => undefined);
    ws.send(Buffer.concat([Buffer.from('{"type":"ping","t":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]), { binary: false });
    expect(await closed).toBe(1007);
  });

  it("a malformed percent-encoding in the path is invalid_url, on every route", async () => {
    for (const path of ["/v1/generations/%E0%A4%A", "/v1/generations/%E0%A4%A/events", "/v1/generations/%ZZ/poll", "/%E0%A4%A"]) {
      expectError(await rawRequest(node.url, get(path)), "invalid_url");
    }
  });

  it("what Node's HTTP parser refuses is answered in the same shape", async () => {
    const badLength = "POST /v1/generations HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: abc\r\n\r\n{}";
    expectError(await rawRequest(node.url, badLength), "invalid_request");
    const both = "POST /v1/generations HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n";
    expectError(await rawRequest(node.url, both), "invalid_request");
    expectError(await rawRequest(node.url, "NOT HTTP AT ALL\r\n\r\n"), "invalid_request");
    expectError(await rawRequest(node.url, get("/healthz", { "x-big": "a".repeat(20_000) })), "headers_too_large");
  });

  it("the body parser's refusals keep their codes", async () => {
    expectError(await rawRequest(node.url, post("/v1/generations", Buffer.from("{"))), "invalid_json");
    expectError(await rawRequest(node.url, post("/v1/generations", Buffer.alloc(0))), "invalid_json");
    expectError(await rawRequest(node.url, post("/v1/generations", Buffer.from('{"__proto__":{"x":1}}'))), "invalid_json");
    const plain = post("/v1/generations", Buffer.from("hi")).toString("latin1").replace("application/json", "text/plain");
    expectError(await rawRequest(node.url, plain), "unsupported_media_type");
    // Refused on its Content-Length alone, before a byte of the body is read.
    const huge = "POST /v1/generations HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 2000000\r\n\r\n";
    expectError(await rawRequest(node.url, huge), "body_too_large");
  });

  it("the static files' refusals are answered in the same shape", async () => {
    expectError(await rawRequest(node.url, get("/%00")), "not_found");
    expectError(await rawRequest(node.url, get("/index.html", { range: "bytes=99999999-" })), "range_not_satisfiable");
    expectError(await rawRequest(node.url, get("/index.html", { "if-match": '"no-such-etag"' })), "precondition_failed");
  });
});

describe("a gateway shutting down", () => {
  it("refuses a request on a kept-alive connection with shutting_down in the API's shape", async () => {
    const config = loadConfig({ LIFELINE_ENGINE: "memory", LIFELINE_PORT: "0", LIFELINE_LOG_LEVEL: "silent" }, {});
    const gateway = await startNode(config, { gateway: true, worker: false });
    const base = gateway.url!;
    // A WebSocket client that never answers the close handshake holds the shutdown open for a moment.
    const mute = await open(base);
    mute.write(
      `GET ${WS_PATH} HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: Upgrade\r\n` +
        "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n",
    );
    await new Promise((resolve) => mute.once("data", resolve)); // 101 Switching Protocols
    const kept = await open(base);
    const ask = "GET /v1/generations/gen_00000000000000000000000000 HTTP/1.1\r\nhost: x\r\n\r\n";
    const before = readAnswer(kept);
    kept.write(ask);
    expectError(await before, "generation_not_found");
    try {
      const closeFrame = new Promise((resolve) => mute.once("data", resolve));
      const stopping = gateway.stop();
      await closeFrame; // the gateway is closing: its WebSockets got 1001
      const during = readAnswer(kept);
      kept.write(ask);
      const answer = await during;
      expectError(answer, "shutting_down");
      expect(answer.headers.connection).toBe("close");
      mute.destroy();
      await stopping;
    } finally {
      mute.destroy();
      kept.destroy();
    }
  });
});
