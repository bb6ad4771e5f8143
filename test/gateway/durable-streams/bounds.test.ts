import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startStreamGateway } from "../../support/stream-gateway.ts";

// Every bad input to the Durable Streams door is a clear 4xx with a stable code in Lifeline's
// error shape, with the protocol's browser-safety headers, and the gateway goes on serving.
describe("the Durable Streams door's bounds", () => {
  let gateway: Awaited<ReturnType<typeof startStreamGateway>>;
  let base: string;
  beforeAll(async () => {
    gateway = await startStreamGateway({ kind: "memory" }, { maxBodyBytes: 64 * 1024 });
    base = `${gateway.url}/v1/stream`;
  });
  afterAll(async () => gateway.stop());

  async function refused(path: string, init: RequestInit, status: number, code: string): Promise<void> {
    const res = await fetch(`${base}${path}`, init);
    expect({ path, status: res.status }).toEqual({ path, status });
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe(code);
  }

  it("refuses names it cannot hold, and the reserved __ds paths", async () => {
    await refused(`/${"n".repeat(513)}`, { method: "PUT" }, 400, "invalid_stream_name");
    await refused("/a%2F%2Fb", { method: "PUT" }, 400, "invalid_stream_name");
    await refused("/a%20b", { method: "PUT" }, 400, "invalid_stream_name");
    await refused("/__ds/subscriptions/s1", { method: "GET" }, 404, "stream_not_found");
    expect((await fetch(`${base}/${"n".repeat(512)}`, { method: "PUT" })).status).toBe(201);
  });

  it("refuses headers out of range, each with invalid_header", async () => {
    await refused("/ttl", { method: "PUT", headers: { "stream-ttl": "315360001" } }, 400, "invalid_header");
    await refused("/ttl", { method: "PUT", headers: { "stream-ttl": "1e3" } }, 400, "invalid_header");
    await refused("/ttl", { method: "PUT", headers: { "stream-expires-at": "tomorrow" } }, 400, "invalid_header");
    await refused("/ct", { method: "PUT", headers: { "content-type": "not a media type" } }, 400, "invalid_header");
    expect((await fetch(`${base}/p`, { method: "PUT", headers: { "content-type": "text/plain" } })).status).toBe(201);
    const producer = { "content-type": "text/plain", "producer-epoch": "0", "producer-seq": "0" };
    await refused("/p", { method: "POST", headers: { ...producer, "producer-id": "x".repeat(257) }, body: "a" }, 400, "invalid_header");
    await refused(
      "/p",
      { method: "POST", headers: { ...producer, "producer-id": "p", "producer-seq": String(2 ** 53) }, body: "a" },
      400,
      "invalid_header",
    );
    await refused(
      "/p",
      { method: "POST", headers: { "content-type": "text/plain", "stream-seq": "s".repeat(257) }, body: "a" },
      400,
      "invalid_header",
    );
    await refused("/p", { method: "POST", body: new Uint8Array([1]) }, 400, "invalid_header");
    await refused("/p", { method: "POST", headers: { "content-type": "text/plain" } }, 400, "empty_body");
  });

  it("refuses a body over the limit with 413 and keeps serving", async () => {
    await refused(
      "/big",
      { method: "PUT", headers: { "content-type": "application/octet-stream" }, body: new Uint8Array(64 * 1024 + 1) },
      413,
      "body_too_large",
    );
    const ok = await fetch(`${base}/big`, {
      method: "PUT",
      headers: { "content-type": "application/octet-stream" },
      body: new Uint8Array(64 * 1024),
    });
    expect(ok.status).toBe(201);
    expect((await fetch(`${base}/big`)).headers.get("stream-next-offset")).toBe("0000000000000001_0000000000000000");
  });

  it("refuses offsets it never gave out", async () => {
    expect((await fetch(`${base}/o`, { method: "PUT", headers: { "content-type": "text/plain" }, body: "abc" })).status).toBe(201);
    await refused("/o?offset=0000000000000002_0000000000000000", { method: "GET" }, 400, "invalid_offset");
    await refused("/o?offset=0000000000000001_0000000000000003", { method: "GET" }, 400, "invalid_offset");
    await refused("/o?offset=-1&offset=-1", { method: "GET" }, 400, "invalid_offset");
    await refused("/o?live=sse", { method: "GET" }, 400, "invalid_offset");
    await refused("/o", { method: "PUT", headers: { "content-type": "application/json" } }, 409, "stream_exists");
  });
});
