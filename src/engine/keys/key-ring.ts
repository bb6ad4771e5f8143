import { createHash, randomBytes, randomInt, timingSafeEqual } from "node:crypto";
import { formatApiKey, parseApiKey, type Scope } from "../../core/api-keys.ts";
import type { KeyStore, StoredKey } from "./port.ts";

const ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";

/** Who a valid key says the caller is. */
export interface KeyHolder {
  readonly keyId: string;
  readonly tenant: string;
  readonly scopes: readonly Scope[];
}

export type KeyCheck = { readonly kind: "valid"; readonly holder: KeyHolder } | { readonly kind: "invalid" } | { readonly kind: "revoked" };

function hashOf(secret: string): string {
  return createHash("sha256").update(secret).digest("hex");
}

/**
 * Makes and checks API keys against a {@link KeyStore}: a key is printed once when it is made; the
 * store keeps only the SHA-256 of its secret (a key is 256 random bits, so a fast hash is enough:
 * nothing to guess, and checking costs microseconds per request).
 */
export class KeyRing {
  readonly #store: KeyStore;

  constructor(store: KeyStore) {
    this.#store = store;
  }

  get store(): KeyStore {
    return this.#store;
  }

  /** Makes a key for `tenant` with `scopes`: the stored record and the key, which exists nowhere else. */
  async create(tenant: string, scopes: readonly Scope[], now = new Date()): Promise<{ key: string; stored: StoredKey }> {
    for (;;) {
      const id = Array.from({ length: 16 }, () => ID_ALPHABET[randomInt(ID_ALPHABET.length)]).join("");
      const secret = randomBytes(32).toString("base64url");
      const stored: StoredKey = { id, tenant, scopes: [...scopes], secretHash: hashOf(secret), createdAt: now.toISOString() };
      if (await this.#store.add(stored)) return { key: formatApiKey(id, secret), stored };
    }
  }

  /** Whether `key` is a key of this ring that is not revoked, and whose it is. */
  async check(key: string): Promise<KeyCheck> {
    const parsed = parseApiKey(key);
    if (!parsed) return { kind: "invalid" };
    const stored = await this.#store.get(parsed.id);
    if (!stored) return { kind: "invalid" };
    const given = Buffer.from(hashOf(parsed.secret), "hex");
    const expected = Buffer.from(stored.secretHash, "hex");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { kind: "invalid" };
    if (stored.revokedAt !== undefined) return { kind: "revoked" };
    return { kind: "valid", holder: { keyId: stored.id, tenant: stored.tenant, scopes: stored.scopes } };
  }
}
