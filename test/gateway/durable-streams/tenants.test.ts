import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Scope } from "../../../src/core/api-keys.ts";
import { generationStreamPath } from "../../../src/core/stream-paths.ts";
import { KeyRing } from "../../../src/engine/keys/key-ring.ts";
import { SqliteKeyStore } from "../../../src/engine/keys/sqlite.ts";
import { startInProcess } from "../../support/in-process.ts";
import { simRequest } from "../../support/sim-answer.ts";
import { tempDir } from "../../support/temp-dir.ts";

// Once a deployment has keys, the Durable Streams door asks each route's scope, keeps each tenant's
// streams apart, and shows a generation only to its tenant: another tenant gets the same 404 as a
// name that does not exist.
describe("the Durable Streams door under API keys", () => {
  const data = tempDir();
  let node: Awaited<ReturnType<typeof startInProcess>>;
  const keys: Record<string, string> = {};

  const call = (path: string, key: string | undefined, init: RequestInit = {}): Promise<Response> =>
    fetch(`${node.url}${path}`, { ...init, headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...init.headers } });
  const codeOf = async (res: Response): Promise<string> => ((await res.json()) as { error: { code: string } }).error.code;

  beforeAll(async () => {
    const store = new SqliteKeyStore({ dataDir: data.path });
    const ring = new KeyRing(store);
    const make = async (name: string, tenant: string, scopes: Scope[]): Promise<void> => {
      keys[name] = (await ring.create(tenant, scopes)).key;
    };
    await make("acme", "acme", ["generations:create", "generations:read"]);
    await make("acmeReader", "acme", ["generations:read"]);
    await make("beta", "beta", ["generations:create", "generations:read"]);
    await store.close();
    node = await startInProcess({ LIFELINE_ENGINE: "sqlite", LIFELINE_DATA_DIR: data.path });
  });
  afterAll(async () => {
    await node?.stop();
    data.remove();
  });

  it("keeps each tenant's streams apart under the same name, and asks each route's scope", async () => {
    const put = (key: string | undefined, body: string): Promise<Response> =>
      call("/v1/stream/notes", key, { method: "PUT", headers: { "content-type": "text/plain" }, body });
    const anonymous = await put(undefined, "x");
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get("x-content-type-options")).toBe("nosniff");
    expect((await put(keys.acme, "acme's")).status).toBe(201);
    expect((await put(keys.beta, "beta's")).status).toBe(201);
    expect(await (await call("/v1/stream/notes", keys.acme)).text()).toBe("acme's");
    expect(await (await call("/v1/stream/notes", keys.acmeReader)).text()).toBe("acme's");
    expect(await (await call("/v1/stream/notes", keys.beta)).text()).toBe("beta's");
    const append = await call("/v1/stream/notes", keys.acmeReader, {
      method: "POST",
      headers: { "content-type": "text/plain" },
      body: "!",
    });
    expect(append.status).toBe(403);
    expect(await codeOf(append)).toBe("forbidden");
    // A fork names a source in the caller's own tenant.
    const fork = await call("/v1/stream/copy", keys.beta, { method: "PUT", headers: { "stream-forked-from": "/v1/stream/notes" } });
    expect(fork.status).toBe(201);
    expect(await (await call("/v1/stream/copy", keys.beta)).text()).toBe("beta's");
    expect((await call("/v1/stream/copy", keys.acme)).status).toBe(404);
  });

  it("shows a generation's stream to its tenant only", async () => {
    const created = await call("/v1/generations", keys.acme, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(simRequest("whose answer is it", { max_tokens: 5 })),
    });
    const { id } = (await created.json()) as { id: string };
    const mine = await call(`${generationStreamPath(id)}?offset=-1`, keys.acmeReader);
    expect(mine.status).toBe(200);
    expect(((await mine.json()) as { type: string }[])[0]?.type).toBe("created");
    const theirs = await call(`${generationStreamPath(id)}?offset=-1`, keys.beta);
    expect(theirs.status).toBe(404);
    expect(await codeOf(theirs)).toBe("stream_not_found");
    expect((await call(generationStreamPath(id), keys.beta, { method: "HEAD" })).status).toBe(404);
  });
});
