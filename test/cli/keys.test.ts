import { afterAll, describe, expect, it } from "vitest";
import { KeyRing } from "../../src/engine/keys/key-ring.ts";
import { SqliteKeyStore } from "../../src/engine/keys/sqlite.ts";
import { runLifeline, runLifelineHere } from "../support/run-cli.ts";
import { tempDir } from "../support/temp-dir.ts";
import { parseApiKey } from "../../src/core/api-keys.ts";

describe("lifeline keys", () => {
  const data = tempDir();
  const env = { LIFELINE_DATA_DIR: data.path };
  afterAll(() => data.remove());

  it("create prints the key once on stdout; the store holds it hashed, and list shows it without its secret", async () => {
    const made = await runLifeline(["keys", "create", "--tenant", "acme", "--scopes", "generations:create,generations:read"], env);
    expect(made.status).toBe(0);
    const key = made.stdout.trim();
    expect(key).toMatch(/^llk_[a-z0-9]{16}_[A-Za-z0-9_-]{43}$/);
    const store = new SqliteKeyStore({ dataDir: data.path });
    try {
      expect(await new KeyRing(store).check(key)).toMatchObject({ kind: "valid", holder: { tenant: "acme" } });
    } finally {
      await store.close();
    }
    const listed = await runLifeline(["keys", "list", "--json"], env);
    expect(listed.status).toBe(0);
    const { keys } = JSON.parse(listed.stdout) as { keys: { id: string; tenant: string; scopes: string[] }[] };
    expect(keys).toEqual([expect.objectContaining({ tenant: "acme", scopes: ["generations:create", "generations:read"] })]);
    expect(listed.stdout).not.toContain(parseApiKey(key)!.secret);
    expect(listed.stdout).not.toContain("secretHash");

    const id = keys[0]!.id;
    expect((await runLifeline(["keys", "revoke", id], env)).status).toBe(0);
    expect((await runLifeline(["keys", "revoke", id], env)).stderr).toContain("already revoked");
    expect((await runLifeline(["keys", "revoke", "0000000000000000"], env)).status).toBe(1);
  });

  it("rotate-signing adds the key that signs, retire-signing removes one, list shows which signs", async () => {
    expect((await runLifeline(["keys", "rotate-signing"], env)).status).toBe(0);
    const listed = JSON.parse((await runLifeline(["keys", "list", "--json"], env)).stdout) as {
      signingKeys: { id: string; secret?: string }[];
    };
    expect(listed.signingKeys).toHaveLength(1);
    expect(listed.signingKeys[0]!.secret).toBeUndefined();
    expect((await runLifeline(["keys", "retire-signing", listed.signingKeys[0]!.id], env)).status).toBe(0);
    expect((await runLifeline(["keys", "retire-signing", listed.signingKeys[0]!.id], env)).status).toBe(1);
  });

  it.each<[string[], RegExp]>([
    [["keys", "create", "--tenant", "Acme Corp", "--scopes", "admin"], /--tenant must be/],
    [["keys", "create", "--tenant", "acme", "--scopes", "generations:delete"], /--scopes must list/],
    [["keys", "create", "--tenant", "acme"], /--scopes must list/],
    [["keys", "revoke", "not-an-id"], /revoke takes one key id/],
    [["keys", "explode"], /unknown action/],
    [["keys", "list", "--engine", "memory"], /memory engine/],
  ])("refuses %j with exit 2 and the reason", async (args, reason) => {
    const run = await runLifelineHere(args, env);
    expect(run.status, args.join(" ")).toBe(2);
    expect(run.stderr, args.join(" ")).toMatch(reason);
  });

  it("as a real process too, a refusal reaches the shell as exit 2", async () => {
    const run = await runLifeline(["keys", "explode"], env);
    expect([run.status, run.stdout]).toEqual([2, ""]);
    expect(run.stderr).toMatch(/unknown action/);
  });
});
