import type { Scope } from "../../core/api-keys.ts";

/** An API key as it is stored: never the key itself, only a hash of its secret. */
export interface StoredKey {
  readonly id: string;
  readonly tenant: string;
  readonly scopes: readonly Scope[];
  /** SHA-256 of the secret, hex. */
  readonly secretHash: string;
  readonly createdAt: string;
  /** Set once the key is revoked; a revoked key is kept, so its id is never given again. */
  readonly revokedAt?: string;
}

/** A secret that signs browsers' read tokens (decision 033); every gateway verifies with every stored one. */
export interface SigningKey {
  /** 8 lower-case letters and digits, named in each token it signs. */
  readonly id: string;
  /** 32 random bytes, base64url. */
  readonly secret: string;
  readonly createdAt: string;
}

export type RevokeResult = "revoked" | "alreadyRevoked" | "notFound";

/**
 * Where API keys live (decision 032), beside the engine and in the same store: the sqlite data
 * folder, or the same Redis deployment and prefix, so every gateway and the `lifeline keys`
 * commands see the same keys. Adapters sit beside this file; one conformance suite proves each
 * (`test/engine/keys.test.ts`).
 */
export interface KeyStore {
  readonly kind: string;
  /** Stores a new key; `false` when its id is taken (the caller draws another). */
  add(key: StoredKey): Promise<boolean>;
  get(id: string): Promise<StoredKey | undefined>;
  /** Every key, revoked ones too, oldest first. */
  list(): Promise<StoredKey[]>;
  revoke(id: string, at: string): Promise<RevokeResult>;
  /**
   * True once any key was made, revoked ones too: the gateway then asks every caller for a key. A
   * deployment whose keys are all revoked stays closed; it never reopens by itself.
   */
  hasKeys(): Promise<boolean>;
  /** Every signing key, newest first: the newest signs, all of them verify. */
  signingKeys(): Promise<SigningKey[]>;
  addSigningKey(key: SigningKey): Promise<void>;
  /** Retires a signing key: tokens it signed stop verifying. False when there was none of that id. */
  removeSigningKey(id: string): Promise<boolean>;
  /**
   * Takes `slot` among the concurrent answers of key `keyId` until `expiresAtMs`, atomically, unless
   * the key already holds `limit` unexpired slots: false then. Taking a slot held already extends it.
   * With `replacing`, that slot is let go in the same step and does not count: a start swaps its
   * reservation for its generation without holding two slots for a moment.
   */
  takeSlot(keyId: string, slot: string, expiresAtMs: number, limit: number, nowMs: number, replacing?: string): Promise<boolean>;
  /** The key's unexpired slots. */
  slots(keyId: string, nowMs: number): Promise<string[]>;
  releaseSlots(keyId: string, slots: readonly string[]): Promise<void>;
  /**
   * Spends `tokens` of key `keyId`'s budget for the window starting at `windowStartMs`, atomically,
   * unless the window's spending would pass `limit`: `false` then, and nothing is spent. Negative
   * `tokens` give back what a start spent and did not use.
   */
  spendTokens(keyId: string, windowStartMs: number, tokens: number, limit: number): Promise<boolean>;
  close(): Promise<void>;
}
