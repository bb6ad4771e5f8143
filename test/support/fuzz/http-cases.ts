import fc from "fast-check";

/**
 * Generated requests for the whole HTTP surface of a gateway: every route template (the native API,
 * the protocol doors, the pages), with ids that exist and ids that do not, cursors, query values,
 * headers and bodies from plausible to hostile. The case is data; `api-fuzzer.ts` sends it.
 */
export interface HttpCase {
  readonly kind: "http";
  readonly method: string;
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Uint8Array | undefined;
}

/** Bytes written to a socket as they are: requests that are not valid HTTP at all. */
export interface RawCase {
  readonly kind: "raw";
  readonly bytes: Uint8Array;
}

export type ApiCase = HttpCase | RawCase;

/** Every route of the gateway, `:id` standing for a generation id (or a chat id, a response id, a stream name). */
export const ROUTE_TEMPLATES = [
  "/healthz",
  "/readyz",
  "/metrics",
  "/v1/generations",
  "/v1/generations/:id",
  "/v1/generations/:id/events",
  "/v1/generations/:id/poll",
  "/v1/generations/:id/timeline",
  "/v1/generations/:id/cancel",
  "/v1/ws",
  "/v1/chat/completions",
  "/v1/responses",
  "/v1/responses/:id",
  "/v1/responses/:id/cancel",
  "/v1/ai-sdk/chat",
  "/v1/ai-sdk/chat/:id/stream",
  "/v1/ai-sdk/chat/:id/stop",
  "/v1/stream/:id",
  "/v1/stream/generations/:id",
  "/client.js",
  "/",
  "/inspect.html",
] as const;

const METHODS = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"];

/** Characters that make the parsers work: separators, escapes, quotes, controls, non-ASCII. */
const NASTY = [
  "",
  " ",
  "%",
  "%00",
  "%2F",
  "%E0%A4%A",
  "..",
  "/",
  ":",
  "\\",
  '"',
  "'",
  "<",
  "{",
  "}",
  "[",
  "]",
  "\u0000",
  "é",
  "🦙",
  "\ud800",
];

/** Visible ASCII: what `node:http` lets a client put in a header value. */
const visibleAscii = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 300 });

/** Text with the characters that break things, in any mix. */
const nastyText = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: "grapheme", maxLength: 20 }),
  fc.constantFrom(...NASTY),
  fc.array(fc.constantFrom(...NASTY), { maxLength: 6 }).map((parts) => parts.join("")),
  fc.nat({ max: 2000 }).map((n) => "x".repeat(n)),
);

const cursorLike = fc.oneof(
  fc.nat().map(String),
  fc.tuple(fc.nat({ max: 20 }), fc.nat({ max: 500 })).map(([a, o]) => `${a}:${o}`),
  fc.constantFrom("-1", "1e3", "0x10", "9999999999999999", "1:", ":1", "a:b", "", " 1"),
  nastyText,
);

/** Percent-encodes every byte of the text's UTF-8 but the unreserved ones (a lone surrogate becomes U+FFFD's bytes). */
function percentEncode(text: string): string {
  let out = "";
  for (const byte of Buffer.from(text, "utf8")) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9\-._~]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

function idArbitrary(knownIds: readonly string[]): fc.Arbitrary<string> {
  const known = knownIds.length > 0 ? [fc.constantFrom(...knownIds)] : [];
  return fc.oneof(
    ...known,
    ...known,
    fc.stringMatching(/^[0-9a-z]{26}$/),
    nastyText.map(percentEncode),
    visibleAscii.map((t) => t.replace(/[\s#?]/g, "").slice(0, 80)),
  );
}

const queryArbitrary: fc.Arbitrary<string> = fc
  .array(
    fc.tuple(
      fc.oneof(fc.constantFrom("from", "wait_ms", "until", "stream", "starting_after", "offset", "live", "cursor", "id"), visibleAscii),
      fc.oneof(cursorLike, fc.constantFrom("true", "false", "-1", "60001", "long-poll", "sse", "now")),
    ),
    { maxLength: 4 },
  )
  .map((pairs) => (pairs.length === 0 ? "" : `?${new URLSearchParams(pairs).toString()}`));

/** A plausible generation request with one part (or none) replaced by something else. */
const generationBody = fc
  .record({
    model: fc.oneof({ arbitrary: fc.constant("sim"), weight: 6 }, fc.constant("gpt-4o"), nastyText, fc.integer()),
    messages: fc.oneof(
      { arbitrary: fc.constant([{ role: "user", content: "hello" }]), weight: 4 },
      fc.array(
        fc.record({
          role: fc.oneof(fc.constantFrom("system", "user", "assistant", "tool", "developer"), nastyText),
          content: fc.oneof(nastyText, fc.constant([{ type: "text", text: "hi" }]), fc.jsonValue({ maxDepth: 2 })),
        }),
        { maxLength: 3 },
      ),
      fc.jsonValue({ maxDepth: 2 }),
    ),
    max_tokens: fc.oneof(
      { arbitrary: fc.constant(undefined), weight: 2 },
      fc.integer({ min: -5, max: 8 }),
      fc.constantFrom(0, 32_768, 32_769, 1e308, -0),
    ),
    stream: fc.oneof({ arbitrary: fc.constant(undefined), weight: 2 }, fc.boolean(), nastyText),
    background: fc.oneof(fc.constant(undefined), fc.boolean()),
    seed: fc.oneof({ arbitrary: fc.constant(undefined), weight: 2 }, fc.integer()),
    temperature: fc.oneof({ arbitrary: fc.constant(undefined), weight: 2 }, fc.double()),
    metadata: fc.oneof({ arbitrary: fc.constant(undefined), weight: 2 }, fc.dictionary(nastyText, nastyText, { maxKeys: 3 })),
  })
  .map((body) => JSON.parse(JSON.stringify(body)) as unknown);

const encoder = new TextEncoder();

const bodyArbitrary: fc.Arbitrary<Uint8Array | undefined> = fc.oneof(
  fc.constant(undefined),
  generationBody.map((b) => encoder.encode(JSON.stringify(b))),
  fc.jsonValue({ maxDepth: 3 }).map((b) => encoder.encode(JSON.stringify(b))),
  nastyText.map((t) => encoder.encode(t)),
  fc.uint8Array({ maxLength: 512 }),
  fc
    .constantFrom('{"__proto__":{"x":1}}', '{"constructor":{"prototype":{}}}', "{", "[]", "null", '"x"', "\ufeff{}")
    .map((t) => encoder.encode(t)),
);

const contentType = fc.oneof(
  fc.constant(undefined),
  fc.constantFrom(
    "application/json",
    "application/json; charset=utf-8",
    "text/plain",
    "application/octet-stream",
    "multipart/form-data",
    "application/json; charset=latin1",
  ),
  visibleAscii,
);

const headerName = fc.oneof(
  fc.constantFrom(
    "idempotency-key",
    "last-event-id",
    "authorization",
    "accept",
    "origin",
    "producer-id",
    "producer-epoch",
    "producer-seq",
    "stream-seq",
    "stream-ttl",
    "stream-expires-at",
    "if-match",
    "range",
  ),
  fc.stringMatching(/^[a-z][a-z0-9-]{0,30}$/),
);

/** HTTP requests through `node:http`, which a real client library could send. */
export function httpCases(knownIds: readonly string[]): fc.Arbitrary<HttpCase> {
  return fc
    .record({
      method: fc.oneof(fc.constantFrom(...METHODS), fc.stringMatching(/^[A-Z]{1,10}$/)),
      template: fc.oneof(
        fc.constantFrom(...ROUTE_TEMPLATES),
        nastyText.map((t) => `/${percentEncode(t)}`),
      ),
      id: idArbitrary(knownIds),
      query: queryArbitrary,
      contentType,
      headers: fc.dictionary(headerName, visibleAscii, { maxKeys: 4 }),
      body: bodyArbitrary,
    })
    .map(({ method, template, id, query, contentType: type, headers, body }) => {
      const path = template.replace(":id", id.length === 0 ? "x" : id) + query;
      const all: Record<string, string> = { ...headers };
      if (type !== undefined) all["content-type"] = type;
      const bodyAllowed = method !== "GET" && method !== "HEAD";
      return {
        kind: "http" as const,
        method,
        path: path.startsWith("/") ? path : `/${path}`,
        headers: all,
        body: bodyAllowed ? body : undefined,
      };
    });
}

/** Requests that get past the router and the body parser: the right method and type, with parts fuzzed. */
export function wellFormedCases(knownIds: readonly string[]): fc.Arbitrary<HttpCase> {
  const id = idArbitrary(knownIds);
  const json = (method: string, path: string, body: unknown, headers: Record<string, string> = {}): HttpCase => ({
    kind: "http",
    method,
    path,
    headers: { "content-type": "application/json", ...headers },
    body: encoder.encode(JSON.stringify(body) ?? "null"),
  });
  const get = (path: string, headers: Record<string, string> = {}): HttpCase => ({
    kind: "http",
    method: "GET",
    path,
    headers,
    body: undefined,
  });
  const key = fc.oneof(fc.constant(undefined), visibleAscii, fc.constantFrom("k1", "k2"));
  return fc.oneof(
    // A start that is valid whole: a generated body is valid in all its parts only about one time
    // in twenty, and a run must reach the route's success however its seed falls.
    fc
      .constantFrom("hello", "fuzz", "again")
      .map((content) => json("POST", "/v1/generations", { model: "sim", messages: [{ role: "user", content }], max_tokens: 4 })),
    fc
      .tuple(generationBody, key)
      .map(([body, k]) => json("POST", "/v1/generations", body, k === undefined ? {} : { "idempotency-key": k })),
    fc
      .tuple(generationBody, key)
      .map(([body, k]) => json("POST", "/v1/chat/completions", body, k === undefined ? {} : { "idempotency-key": k })),
    fc
      .tuple(generationBody, fc.string({ maxLength: 20 }))
      .map(([body, input]) => json("POST", "/v1/responses", { ...(body as object), input })),
    fc.tuple(fc.string({ maxLength: 20 }), generationBody).map(([chat, body]) =>
      json("POST", "/v1/ai-sdk/chat", {
        id: chat,
        messages: [{ id: "m", role: "user", parts: [{ type: "text", text: "hi" }] }],
        trigger: "submit-message",
        ...(body as object),
      }),
    ),
    fc.tuple(id, cursorLike).map(([i, c]) => get(`/v1/generations/${i}/events?from=${percentEncode(c)}`)),
    fc.tuple(id, cursorLike).map(([i, c]) => get(`/v1/generations/${i}/events`, { "last-event-id": c.replace(/[^\x20-\x7e]/g, "") })),
    fc
      .tuple(id, cursorLike, fc.nat({ max: 200 }))
      .map(([i, c, w]) => get(`/v1/generations/${i}/poll?from=${percentEncode(c)}&wait_ms=${w}`)),
    fc.tuple(id, cursorLike).map(([i, c]) => get(`/v1/generations/${i}/timeline?until=${percentEncode(c)}`)),
    id.map((i) => json("POST", `/v1/generations/${i}/cancel`, {})),
    fc.tuple(id, cursorLike).map(([i, c]) => get(`/v1/responses/${i}?stream=true&starting_after=${percentEncode(c)}`)),
    id.map((i) => json("POST", `/v1/responses/${i}/cancel`, {})),
    id.map((i) => get(`/v1/ai-sdk/chat/${i}/stream`)),
    fc.tuple(id, cursorLike).map(([i, c]) => get(`/v1/stream/generations/${i}?offset=${percentEncode(c)}`)),
  );
}

/** Bytes that are not (quite) HTTP: garbage, a broken request line, bad chunking, a lying Content-Length. */
export function rawCases(knownIds: readonly string[]): fc.Arbitrary<RawCase> {
  const id = idArbitrary(knownIds);
  const lines = fc.oneof(
    fc.uint8Array({ minLength: 1, maxLength: 400 }).map((b) => Buffer.from(b).toString("latin1")),
    fc
      .tuple(fc.constantFrom(...METHODS), fc.constantFrom(...ROUTE_TEMPLATES), id, fc.string({ maxLength: 60 }))
      .map(([m, t, i, garbage]) => `${m} ${t.replace(":id", i)} HTTP/1.1\r\nHost: x\r\n${garbage}\r\n\r\n`),
    fc
      .tuple(fc.constantFrom(...ROUTE_TEMPLATES), fc.integer({ min: -5, max: 100 }), fc.string({ maxLength: 40 }))
      .map(
        ([t, length, body]) =>
          `POST ${t.replace(":id", "x")} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n${body}`,
      ),
    fc
      .tuple(fc.constantFrom(...ROUTE_TEMPLATES), fc.string({ maxLength: 40 }))
      .map(
        ([t, chunk]) =>
          `POST ${t.replace(":id", "x")} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${chunk}\r\n0\r\n\r\n`,
      ),
    fc.constantFrom(
      "GET / HTTP/1.1\r\n\r\n",
      "GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n",
      "GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: nope\r\nSec-WebSocket-Version: 99\r\n\r\n",
      "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
      "GET /healthz HTTP/9.9\r\n\r\n",
    ),
  );
  return lines.map((text) => ({ kind: "raw" as const, bytes: Buffer.from(text, "latin1") }));
}

/** Mostly requests a client library could send, some that no client should. */
export function apiCases(knownIds: readonly string[]): fc.Arbitrary<ApiCase> {
  return fc.oneof(
    { arbitrary: httpCases(knownIds), weight: 5 },
    { arbitrary: wellFormedCases(knownIds), weight: 4 },
    { arbitrary: rawCases(knownIds), weight: 1 },
  );
}
