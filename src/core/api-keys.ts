/**
 * API keys as the wire and the CLI know them (decision 032). A key is `llk_<id>_<secret>`: the id
 * names the stored record (listed, revoked, shown in logs), the secret is what proves the caller
 * and is kept only as a hash. Nothing here does I/O or hashing.
 */

/** What a key may do. `admin` may do everything, on every tenant. */
export const SCOPES = ["generations:create", "generations:read", "admin"] as const;
export type Scope = (typeof SCOPES)[number];

/** A tenant's name: lower-case letters, digits, `_` and `-`, 1 to 64 characters, starting with a letter or digit. */
export const TENANT_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;

/** A key's public id: 16 lower-case letters and digits. */
export const KEY_ID = /^[a-z0-9]{16}$/;

const KEY_PREFIX = "llk_";
const KEY_TEXT = /^llk_([a-z0-9]{16})_([A-Za-z0-9_-]{43})$/;

/** The key a caller presents, split into the record's id and the secret to check. */
export function parseApiKey(text: string): { readonly id: string; readonly secret: string } | undefined {
  const match = KEY_TEXT.exec(text);
  return match ? { id: match[1]!, secret: match[2]! } : undefined;
}

/** The key as the CLI prints it once: `llk_<id>_<secret>` (the secret 32 random bytes in base64url). */
export function formatApiKey(id: string, secret: string): string {
  return `${KEY_PREFIX}${id}_${secret}`;
}

/** Parses `generations:create,generations:read`; `undefined` when a name is not a scope or none is given. */
export function parseScopes(text: string): Scope[] | undefined {
  const names = text
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  if (names.length === 0 || !names.every((n): n is Scope => (SCOPES as readonly string[]).includes(n))) return undefined;
  return [...new Set(names)];
}

/** True when a key with `scopes` may do what `needed` names. */
export function allows(scopes: readonly Scope[], needed: Scope): boolean {
  return scopes.includes("admin") || scopes.includes(needed);
}
