import { parseArgs } from "node:util";
import { KEY_ID, SCOPES, TENANT_NAME, parseScopes } from "../core/api-keys.ts";
import { KeyRing } from "../engine/keys/key-ring.ts";
import { openKeyStore } from "../engine/keys/open-key-store.ts";
import { newSigningKey } from "../engine/keys/signing-keys.ts";
import { ConfigError, FLAG_SPEC, loadConfig } from "./config.ts";
import { engineConfigOf } from "./engine-config.ts";

export const KEYS_USAGE = `Usage: lifeline keys <create | list | revoke> [options] [engine options]

Manages the API keys every gateway on the same engine checks (docs/security.md). Once one key
exists, every caller needs one; the engine options are those of \`lifeline start\` (--engine,
--data-dir, --redis-url, …, or their environment variables).

  create --tenant <name> --scopes <s1,s2>   makes a key and prints it once (it is stored hashed)
                                            scopes: ${SCOPES.join(", ")}
  list [--json]                             every key: id, tenant, scopes, created, revoked
  revoke <key-id>                           refuses the key from now on, on every gateway`;

/** Thrown for a mistake in the command line: the caller prints it with the usage and exits 2. */
export class KeysUsageError extends Error {}

/** `lifeline keys …`. Returns the exit code: 0, or 1 when the key to revoke does not exist. */
export async function keysCommand(args: readonly string[], out: (text: string) => void, err: (text: string) => void): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      options: { ...FLAG_SPEC, tenant: { type: "string" }, scopes: { type: "string" }, json: { type: "boolean" } },
      strict: true,
      allowPositionals: true,
    });
  } catch (error) {
    throw new KeysUsageError((error as Error).message);
  }
  const { tenant, scopes, json, ...engineFlags } = parsed.values;
  const [action, ...rest] = parsed.positionals;
  if (action !== "create" && action !== "list" && action !== "revoke" && action !== "rotate-signing" && action !== "retire-signing") {
    throw new KeysUsageError(`unknown action ${JSON.stringify(action ?? "")}`);
  }
  let config;
  try {
    config = loadConfig(process.env, engineFlags as Record<string, string | undefined>);
  } catch (error) {
    if (error instanceof ConfigError) throw new KeysUsageError(error.message);
    throw error;
  }
  if (config.engine === "memory")
    throw new KeysUsageError("the memory engine lives in one process: keys made here would die with this command");

  let input: { tenant: string; scopes: NonNullable<ReturnType<typeof parseScopes>> } | undefined;
  if (action === "create") {
    if (tenant === undefined || !TENANT_NAME.test(tenant))
      throw new KeysUsageError("--tenant must be 1 to 64 of a-z, 0-9, _ and -, starting with a letter or digit");
    const parsedScopes = scopes === undefined ? undefined : parseScopes(scopes);
    if (!parsedScopes) throw new KeysUsageError(`--scopes must list one or more of ${SCOPES.join(", ")}, comma-separated`);
    input = { tenant, scopes: parsedScopes };
  }
  if (action === "revoke" && (rest.length !== 1 || !KEY_ID.test(rest[0]!)))
    throw new KeysUsageError("revoke takes one key id (16 of a-z and 0-9, as `keys list` shows it)");
  if (action === "retire-signing" && (rest.length !== 1 || !/^[a-z0-9]{8}$/.test(rest[0]!))) {
    throw new KeysUsageError("retire-signing takes one signing key id (8 of a-z and 0-9, as `keys list` shows it)");
  }
  if (action !== "revoke" && action !== "retire-signing" && rest.length > 0)
    throw new KeysUsageError(`unexpected ${JSON.stringify(rest[0])}`);

  const store = await openKeyStore(engineConfigOf(config));
  try {
    if (input) {
      const { key, stored } = await new KeyRing(store).create(input.tenant, input.scopes);
      err(`key ${stored.id} for tenant ${stored.tenant} (${stored.scopes.join(", ")}); it is shown once, store it now:\n`);
      out(`${key}\n`);
      return 0;
    }
    if (action === "rotate-signing") {
      const key = newSigningKey();
      await store.addSigningKey(key);
      err(`signing key ${key.id} signs read tokens from now on (every gateway within 30 s); the older ones still verify\n`);
      return 0;
    }
    if (action === "retire-signing") {
      if (await store.removeSigningKey(rest[0]!)) {
        err(`signing key ${rest[0]} retired: tokens it signed stop verifying (every gateway within 30 s)\n`);
        return 0;
      }
      err(`no signing key has the id ${rest[0]}\n`);
      return 1;
    }
    if (action === "revoke") {
      const result = await store.revoke(rest[0]!, new Date().toISOString());
      if (result === "notFound") {
        err(`no key has the id ${rest[0]}\n`);
        return 1;
      }
      err(result === "revoked" ? `key ${rest[0]} revoked\n` : `key ${rest[0]} was already revoked\n`);
      return 0;
    }
    const keys = (await store.list()).map(({ secretHash: _hash, ...shown }) => shown);
    const signing = (await store.signingKeys()).map(({ secret: _secret, ...shown }) => shown);
    if (json) out(`${JSON.stringify({ keys, signingKeys: signing }, null, 2)}\n`);
    else {
      for (const k of keys)
        out(`${k.id}  ${k.tenant}  ${k.scopes.join(",")}  created ${k.createdAt}${k.revokedAt ? `  revoked ${k.revokedAt}` : ""}\n`);
      for (const [i, k] of signing.entries()) out(`signing ${k.id}  created ${k.createdAt}${i === 0 ? "  (signs)" : ""}\n`);
    }
    return 0;
  } finally {
    await store.close();
  }
}
