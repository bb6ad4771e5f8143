import { createHmac, timingSafeEqual } from "node:crypto";
import type { KeyStore, SigningKey } from "../../engine/keys/port.ts";
import { newSigningKey } from "../../engine/keys/signing-keys.ts";

/** How long a read token lives unless the gateway is told otherwise. */
export const READ_TOKEN_TTL_MS = 10 * 60_000;

/** How long a gateway trusts the signing keys it loaded; an unknown key id reloads them sooner. */
const KEYS_TRUSTED_MS = 30_000;
const RELOAD_AT_MOST_EVERY_MS = 1000;

const TOKEN = /^llt_([A-Za-z0-9_-]{1,400})\.([A-Za-z0-9_-]{43})$/;

export type TokenCheck =
  | { readonly kind: "valid"; readonly generation: string; readonly tenant: string | undefined; readonly readOnly: boolean }
  | { readonly kind: "invalid" }
  | { readonly kind: "expired" };

interface Payload {
  /** Signing key id. */
  readonly k: string;
  /** The one generation the token opens. */
  readonly g: string;
  /** Its tenant; empty when the generation has none. */
  readonly t: string;
  /** Expiry, seconds since the epoch. */
  readonly e: number;
  /** 1 when the token only reads (no cancel): it was given to a key that may not cancel. */
  readonly r?: 1;
}

/** True for a string that has the shape of a read token (as opposed to an API key). */
export function looksLikeReadToken(text: string): boolean {
  return text.startsWith("llt_");
}

/**
 * Read tokens for browsers (decision 033): `llt_<payload>.<HMAC-SHA256>`, naming one generation and
 * an expiry, signed with the newest signing key of the store and verified with any stored one. A page
 * holds no secret: its server gets a token with each generation it starts (and renews it through
 * `POST /v1/generations/:id/token`), and the page follows and cancels that one generation with it.
 * Rotating adds a key that signs from then on; the old one keeps verifying until it is retired, so no
 * live follower is dropped.
 */
export class ReadTokens {
  readonly #store: KeyStore;
  readonly #ttlMs: number;
  #keys: SigningKey[] = [];
  #loadedAt = -Infinity;
  #loading: Promise<void> | undefined;
  /** When a token naming an unknown key last made this gateway look again (at most once a second: forged ids cost nothing). */
  #missedAt = -Infinity;

  constructor(store: KeyStore, ttlMs = READ_TOKEN_TTL_MS) {
    this.#store = store;
    this.#ttlMs = ttlMs;
  }

  /** A token that opens `generation` until it expires; a `readOnly` one does not cancel it. */
  async issue(
    generation: string,
    tenant: string | undefined,
    now = Date.now(),
    readOnly = false,
  ): Promise<{ token: string; expiresAt: string }> {
    let signer = (await this.#current())[0];
    if (!signer) {
      // The first token of a deployment: make the key that signs (another gateway may race; both verify).
      await this.#store.addSigningKey(newSigningKey());
      signer = (await this.#reload())[0]!;
    }
    const expiresMs = now + this.#ttlMs;
    const payload: Payload = {
      k: signer.id,
      g: generation,
      t: tenant ?? "",
      e: Math.floor(expiresMs / 1000),
      ...(readOnly ? { r: 1 as const } : {}),
    };
    const body = Buffer.from(JSON.stringify(payload)).toString("base64url");
    return { token: `llt_${body}.${sign(signer, body)}`, expiresAt: new Date(payload.e * 1000).toISOString() };
  }

  async check(token: string, now = Date.now()): Promise<TokenCheck> {
    const match = TOKEN.exec(token);
    if (!match) return { kind: "invalid" };
    const [, body, signature] = match as unknown as [string, string, string];
    let payload: Payload;
    try {
      payload = JSON.parse(Buffer.from(body, "base64url").toString("utf8")) as Payload;
    } catch {
      return { kind: "invalid" };
    }
    if (typeof payload?.k !== "string" || typeof payload.g !== "string" || typeof payload.t !== "string" || typeof payload.e !== "number") {
      return { kind: "invalid" };
    }
    let key = (await this.#current()).find((k) => k.id === payload.k);
    if (!key && performance.now() - this.#missedAt >= RELOAD_AT_MOST_EVERY_MS) {
      this.#missedAt = performance.now();
      key = (await this.#reload()).find((k) => k.id === payload.k);
    }
    if (!key) return { kind: "invalid" };
    const expected = Buffer.from(sign(key, body));
    const given = Buffer.from(signature);
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) return { kind: "invalid" };
    if (payload.e * 1000 <= now) return { kind: "expired" };
    return { kind: "valid", generation: payload.g, tenant: payload.t === "" ? undefined : payload.t, readOnly: payload.r === 1 };
  }

  async #current(): Promise<SigningKey[]> {
    if (performance.now() - this.#loadedAt < KEYS_TRUSTED_MS) return this.#keys;
    return this.#reload();
  }

  async #reload(): Promise<SigningKey[]> {
    this.#loading ??= this.#store.signingKeys().then(
      (keys) => {
        this.#keys = keys;
        this.#loadedAt = performance.now();
        this.#loading = undefined;
      },
      (error: unknown) => {
        this.#loading = undefined;
        throw error;
      },
    );
    await this.#loading;
    return this.#keys;
  }
}

function sign(key: SigningKey, body: string): string {
  return createHmac("sha256", Buffer.from(key.secret, "base64url")).update(body).digest("base64url");
}
