import { Writable } from "node:stream";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { loadConfig } from "../../src/cli/config.ts";
import { startNode } from "../../src/cli/node.ts";
import { KeyRing } from "../../src/engine/keys/key-ring.ts";
import { SqliteKeyStore } from "../../src/engine/keys/sqlite.ts";
import { simRequest } from "../support/sim-answer.ts";
import { tempDir } from "../support/temp-dir.ts";
import { parseApiKey } from "../../src/core/api-keys.ts";

describe("secrets never reach the logs, the metrics, the log of an answer or an error message", () => {
  it("a key and a read token used on every route, right and wrong, appear nowhere but in the requests", async () => {
    const data = tempDir();
    const store = new SqliteKeyStore({ dataDir: data.path });
    const { key } = await new KeyRing(store).create("acme", ["admin"]);
    const secret = parseApiKey(key)!.secret;
    let logged = "";
    const logger = pino(
      { level: "trace" },
      new Writable({
        write(chunk: Buffer, _encoding, done) {
          logged += chunk.toString();
          done();
        },
      }),
    );
    const config = loadConfig(
      { LIFELINE_ENGINE: "sqlite", LIFELINE_DATA_DIR: data.path, LIFELINE_PORT: "0", LIFELINE_SIM_TOKENS_PER_SECOND: "500" },
      {},
    );
    const node = await startNode(config, { gateway: true, worker: true }, { logger });
    const said: string[] = [];
    try {
      const url = node.url!;
      const auth = { authorization: `Bearer ${key}`, "content-type": "application/json" };
      const created = (await (
        await fetch(`${url}/v1/generations`, {
          method: "POST",
          headers: auth,
          body: JSON.stringify(simRequest("secret-free", { max_tokens: 5 })),
        })
      ).json()) as {
        id: string;
        token: string;
      };
      const token = created.token;
      const tokenSignature = token.split(".")[1]!;
      said.push(await (await fetch(`${url}/v1/generations/${created.id}/events?token=${encodeURIComponent(token)}`)).text());
      said.push(await (await fetch(`${url}/v1/generations/${created.id}/timeline`, { headers: auth })).text());
      said.push(await (await fetch(`${url}/metrics`, { headers: auth })).text());
      // Wrong on purpose: a key one character off, a token for the wrong route, a malformed header.
      said.push(await (await fetch(`${url}/v1/generations`, { headers: { authorization: `Bearer ${key.slice(0, -1)}x` } })).text());
      said.push(await (await fetch(`${url}/v1/generations/${created.id}/timeline?token=${encodeURIComponent(token)}`)).text());
      said.push(await (await fetch(`${url}/v1/generations/${created.id}`, { headers: { authorization: `Token ${key}` } })).text());
      await new Promise<void>((resolve) => {
        const ws = new WebSocket(`${url.replace("http", "ws")}/v1/ws?token=${encodeURIComponent(token)}x`);
        ws.on("unexpected-response", () => resolve());
        ws.on("error", () => resolve());
      });
      for (const text of [...said, logged]) {
        expect(text).not.toContain(secret);
        expect(text).not.toContain(tokenSignature);
      }
      expect(logged).toContain("generation accepted"); // the logs were captured at all
    } finally {
      await node.stop();
      await store.close();
      data.remove();
    }
  });
});
