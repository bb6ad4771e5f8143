import { afterEach, describe, expect, it } from "vitest";
import { startStreamGateway } from "../../support/stream-gateway.ts";
import { tempDir } from "../../support/temp-dir.ts";

type Gateway = Awaited<ReturnType<typeof startStreamGateway>>;

// Streams are in the engine's storage, not in a gateway: two gateways on one sqlite data folder
// serve the same bytes at the same offsets, wake each other's readers, and a restart loses nothing.
describe("Durable Streams across gateways on one sqlite data folder", () => {
  const open: Gateway[] = [];
  const dirs: { remove(): void }[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((g) => g.stop()));
    for (const dir of dirs.splice(0)) dir.remove();
  });
  const start = async (path: string): Promise<Gateway> => {
    const gateway = await startStreamGateway({ kind: "sqlite", dataDir: path }, { streamLongPollMs: 30_000 });
    open.push(gateway);
    return gateway;
  };

  it("a long-poll on one gateway is answered by an append through the other, and a restart keeps every byte", async () => {
    const dir = tempDir("lifeline-ds-two-");
    dirs.push(dir);
    const a = await start(dir.path);
    const b = await start(dir.path);
    const created = await fetch(`${a.url}/v1/stream/shared`, {
      method: "PUT",
      headers: { "content-type": "application/octet-stream" },
      body: new Uint8Array([0, 1, 2]),
    });
    const tail = created.headers.get("stream-next-offset")!;
    const waiting = fetch(`${a.url}/v1/stream/shared?offset=${tail}&live=long-poll`);
    const appended = await fetch(`${b.url}/v1/stream/shared`, {
      method: "POST",
      headers: { "content-type": "application/octet-stream" },
      body: new Uint8Array([253, 254, 255]),
    });
    expect(appended.status).toBe(204);
    const answer = await waiting;
    expect(answer.status).toBe(200);
    expect([...new Uint8Array(await answer.arrayBuffer())]).toEqual([253, 254, 255]);
    expect(answer.headers.get("stream-next-offset")).toBe(appended.headers.get("stream-next-offset"));

    // Both gateways stop; a new one on the same folder serves the same bytes at the same offsets.
    await Promise.all(open.splice(0).map((g) => g.stop()));
    const c = await start(dir.path);
    const all = await fetch(`${c.url}/v1/stream/shared?offset=-1`);
    expect([...new Uint8Array(await all.arrayBuffer())]).toEqual([0, 1, 2, 253, 254, 255]);
    const after = await fetch(`${c.url}/v1/stream/shared?offset=${tail}`);
    expect([...new Uint8Array(await after.arrayBuffer())]).toEqual([253, 254, 255]);
  });
});
