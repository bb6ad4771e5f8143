import { spawn } from "node:child_process";
import { createServer, type RequestListener, type Server, type ServerResponse } from "node:http";
import { createServer as createTcpServer, type AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import type { Socket } from "node:net";
import { Agent, buildConnector, type Dispatcher } from "undici";
import { afterEach, describe, expect, it, vi } from "vitest";
import { modelDispatcher, sendSliced, type SlicedResponse } from "../../src/llm/providers/sliced-response.ts";
import { turnWhenLong } from "../../src/observability/turns.ts";

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve).closeAllConnections())));
});

async function serve(handler: RequestListener): Promise<string> {
  const server = createServer(handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A model's answer as it is written: one SSE event, and so one HTTP chunk, per token. */
function event(i: number): string {
  return `data: {"choices":[{"delta":{"content":"token ${i} "}}]}\n\n`;
}
const events = Array.from({ length: 2000 }, (_, i) => event(i));
const answer = (_req: unknown, res: ServerResponse): void => {
  res.writeHead(200, { "content-type": "text/event-stream" });
  for (const event of events) res.write(event);
  res.end();
};

/** A model dispatcher that counts what undici's parser hands over, chunk by chunk. */
function counting(): { readonly dispatcher: Dispatcher; readonly bytes: number } {
  const counter = { dispatcher: modelDispatcher(), bytes: 0 };
  counter.dispatcher = counter.dispatcher.compose((dispatch) => (options, handler) => {
    const counted: Dispatcher.DispatchHandlers = {
      onConnect: (abort) => handler.onConnect?.(abort),
      onHeaders: (status, headers, resume, statusText) => handler.onHeaders?.(status, headers, resume, statusText) ?? true,
      onData: (chunk) => {
        counter.bytes += chunk.length;
        return handler.onData?.(chunk) ?? true;
      },
      onComplete: (trailers) => handler.onComplete?.(trailers),
      onError: (error) => handler.onError?.(error),
    };
    return dispatch(options, counted);
  });
  return counter;
}

async function readAll(response: SlicedResponse): Promise<string> {
  const parts: Buffer[] = [];
  for (let part = await response.read(); part; part = await response.read()) parts.push(part);
  return Buffer.concat(parts).toString();
}

/** A server of `events`, written as fast as the socket takes them; prints its origin. */
const MODEL_PROCESS = `
const events = Array.from({ length: ${events.length} }, (_, i) => (${event.toString()})(i));
const server = require("node:http").createServer(async (req, res) => {
  res.writeHead(200, { "content-type": "text/event-stream" });
  for (const event of events) if (!res.write(event)) await new Promise((resolve) => res.once("drain", resolve));
  res.end();
});
server.listen(0, "127.0.0.1", () => console.log("http://127.0.0.1:" + server.address().port));
`;

function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

describe("a sliced response", () => {
  it("reads the model's socket no faster than its reader reads: a slow reader holds the model back", async () => {
    // A model far ahead of its reader: ten megabytes, written as fast as the socket takes them.
    let modelDone = false;
    const origin = await serve(async (_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      for (let i = 0; i < 200_000 && !res.destroyed; i++) {
        if (!res.write(event(i))) await new Promise((resolve) => res.once("drain", resolve).once("close", resolve));
      }
      modelDone = !res.destroyed;
      res.end();
    });
    const sockets: Socket[] = [];
    const connect = buildConnector({ timeout: 0 });
    const dispatcher = new Agent({
      connect: (options, callback) =>
        connect(options, (...args) => {
          if (args[0] === null) sockets.push(args[1]);
          callback(...args);
        }),
    });
    try {
      const response = await sendSliced(dispatcher, { origin, path: "/", method: "GET" }).response;
      let taken = 0; // on the wire: each event is a chunk of its own, with its size line and CRLF
      for (let i = 0; i < 60; i++) {
        const part = (await response.read())?.toString() ?? "";
        taken += part.length + (part.match(/\n\n/g)?.length ?? 0) * 6;
        await sleep(5); // a reader slower than the model: the loop turns, the socket has data
      }
      const read = sockets.reduce((sum, socket) => sum + socket.bytesRead, 0);
      expect(modelDone).toBe(false); // the model was held back by its socket
      // Read off the socket beyond what the reader took: 16 KB parsed ahead and the chunk that
      // crossed it, what the socket holds (its 64 KB buffer and one read of the kernel's), the headers.
      expect(read - taken).toBeLessThan(256 << 10);
    } finally {
      await dispatcher.destroy();
    }
  });

  it("fifty busy readers of fast models: what a stopped parser leaves is taken off the socket again once, not again and again", async () => {
    // The models in a process of their own, as fast as their sockets take it.
    const model = spawn(process.execPath, ["-e", MODEL_PROCESS], { stdio: ["ignore", "pipe", "inherit"] });
    const origin = new Promise<string>((resolve) => model.stdout.once("data", (data: Buffer) => resolve(data.toString().trim())));
    let taken = 0; // what undici took off the sockets to parse, put back and taken again included
    const connect = buildConnector({ timeout: 0 });
    const dispatcher = new Agent({
      connect: (options, callback) =>
        connect(options, (...args) => {
          if (args[0] === null) {
            const socket = args[1];
            const read = socket.read.bind(socket);
            socket.read = (size?: number) => {
              const data = read(size) as Buffer | null;
              taken += data?.length ?? 0;
              return data;
            };
          }
          callback(...args);
        }),
    });
    try {
      const bodies = await Promise.all(
        Array.from({ length: 50 }, async () => {
          const response = await sendSliced(dispatcher, { origin: await origin, path: "/", method: "GET" }).response;
          let length = 0;
          for (let part = await response.read(); part; part = await response.read()) {
            length += part.length;
            busy(part.length / 4000); // a reader's work on what it got: the loop's slice is spent now and then
          }
          return length;
        }),
      );
      const body = bodies.reduce((sum, length) => sum + length, 0);
      expect(body).toBe(50 * Buffer.byteLength(events.join("")));
      // The wire holds about 10 % more than the body (chunk sizes, headers); what a parser stopped
      // on the way put back is taken again once. A parser stopped after one chunk at each start
      // puts back nearly all its socket holds, again and again (five to seven times the body).
      expect(taken / body).toBeLessThan(3);
    } finally {
      await dispatcher.destroy();
      model.kill();
    }
  });

  it("is parsed no further than 16 KB ahead of a reader that stops reading, and then read whole", async () => {
    // The answer's first half, then its second once the reader has stopped reading.
    let secondHalf!: () => void;
    const secondHalfWanted = new Promise<void>((resolve) => (secondHalf = resolve));
    const origin = await serve(async (_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      for (const event of events.slice(0, 1000)) res.write(event);
      await secondHalfWanted;
      for (const event of events.slice(1000)) res.write(event);
      res.end();
    });
    const parsed = counting();
    const response = await sendSliced(parsed.dispatcher, { origin, path: "/", method: "GET" }).response;
    // Two reads: the second finds nothing parsed and goes on parsing all the socket holds, in a
    // fresh slice; then the reader stops reading. The clock stands still meanwhile: a slice is
    // counted in wall time, and a loaded machine that took the CPU away mid-parse would spend it.
    const now = performance.now();
    const clock = vi.spyOn(performance, "now").mockReturnValue(now);
    let taken: number;
    try {
      taken = [await response.read(), await response.read()].reduce((sum, part) => sum + (part?.length ?? 0), 0);
    } finally {
      clock.mockRestore();
    }
    secondHalf();
    // The second half (about 60 KB) comes in while the loop turns and its slice is never spent.
    for (const end = performance.now() + 200; performance.now() < end;) {
      await turnWhenLong();
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(taken).toBeGreaterThan(8 << 10); // a read in a fresh slice takes a good part of the first half at once
    expect(parsed.bytes - taken).toBeLessThan((16 << 10) + 100); // 16 KB, and the chunk that crossed it
    expect(taken + Buffer.byteLength(await readAll(response))).toBe(Buffer.byteLength(events.join("")));
  });

  it("once the loop's slice is spent, the parser stops after the chunk in hand and goes on at the next turn", async () => {
    const origin = await serve(answer);
    const parsed = counting();
    const request = sendSliced(parsed.dispatcher, { origin, path: "/", method: "GET" });
    busy(20); // work that never lets the loop turn: the slice is spent
    await sleep(200); // timers let I/O in but are no turn of the slice: the data that comes in finds it spent
    expect(parsed.bytes).toBe(events[0]!.length); // one chunk, where a slice not spent takes 16 KB
    const response = await request.response;
    expect(await readAll(response)).toBe(events.join(""));
  });

  it("an abort while the connection is still being made fails the request at once", async () => {
    const connecting = new Agent({ connect: () => undefined }); // a connection that never comes up
    try {
      const request = sendSliced(connecting, { origin: "http://127.0.0.1:9", path: "/", method: "GET" });
      await sleep(50);
      request.abort(new Error("the connect timeout passed"));
      await expect(request.response).rejects.toThrow("the connect timeout passed");
    } finally {
      void connecting.destroy();
    }
  });

  // What undici 6 and 7 cannot take: a socket that ends while the parser of a response not kept
  // alive is stopped (an assertion in its `end` handler, uncatchable). Such a response is never
  // stopped; the data comes in while the slice is spent, the reader reads later, the process stays up.
  const short = events.slice(0, 20).join(""); // one read: the parser would stop at its very end
  // An HTTP/1.0 response claiming `chunked` (which HTTP/1.0 does not have) cannot be told apart
  // by the handler, which is not given the version: it is stopped like any chunked response.
  it.each([
    ["Content-Length and Connection: close", `Content-Length: ${Buffer.byteLength(short)}\r\nConnection: close\r\n`, false, "1.1"],
    ["a body that ends with the connection", "Connection: close\r\n", false, "1.1"],
    ["chunked and Connection: close", "Transfer-Encoding: chunked\r\nConnection: close\r\n", true, "1.1"],
    ["a coding after chunked (so the body ends with the connection)", "Transfer-Encoding: chunked, br\r\n", false, "1.1"],
    ["HTTP/1.0 and chunked", "Transfer-Encoding: chunked\r\n", true, "1.0"],
  ])("a response with %s, ended by the server while the reader is away, is read whole", async (_name, framing, chunked, version) => {
    const server = createTcpServer((socket) => {
      socket.once("data", () => {
        socket.write(`HTTP/${version} 200 OK\r\nContent-Type: text/event-stream\r\n${framing}\r\n`);
        for (const event of events.slice(0, 20)) socket.write(chunked ? `${Buffer.byteLength(event).toString(16)}\r\n${event}\r\n` : event);
        socket.end(chunked ? "0\r\n\r\n" : "");
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const request = sendSliced(modelDispatcher(), { origin, path: "/", method: "GET" });
      busy(20); // the slice is spent when the data comes in
      await sleep(200); // every byte and the end of the connection have come in
      expect(await readAll(await request.response)).toBe(short);
    } finally {
      server.close();
    }
  });

  it("an HTTP/1.0 response claiming chunked, cut short while its parser is stopped, fails the read", async () => {
    const server = createTcpServer((socket) => {
      socket.once("data", () => {
        socket.write("HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n");
        for (const event of events.slice(0, 20)) socket.write(`${Buffer.byteLength(event).toString(16)}\r\n${event}\r\n`);
        socket.end(); // no last chunk
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const parsed = counting();
      const request = sendSliced(parsed.dispatcher, { origin, path: "/", method: "GET" });
      busy(20); // the slice is spent when the data comes in: the parser stops after the first chunk
      await sleep(200); // every byte and the end of the connection have come in
      expect(parsed.bytes).toBe(events[0]!.length); // stopped while the socket ended
      await expect(readAll(await request.response)).rejects.toThrow();
    } finally {
      server.close();
    }
  });

  it("an abort asked for before the request starts drops it", async () => {
    let requests = 0;
    const origin = await serve((req, res) => {
      requests += 1;
      answer(req, res);
    });
    const request = sendSliced(modelDispatcher(), { origin, path: "/", method: "GET" });
    request.abort(new Error("no longer wanted"));
    await expect(request.response).rejects.toThrow("no longer wanted");
    await sleep(100);
    expect(requests).toBe(0);
  });
});
