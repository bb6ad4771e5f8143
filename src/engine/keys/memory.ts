import type { KeyStore, RevokeResult, SigningKey, StoredKey } from "./port.ts";
import { newestFirst } from "./signing-keys.ts";

/** Keys in this process's memory: for tests and the `memory` engine. */
export class MemoryKeyStore implements KeyStore {
  readonly kind = "memory";
  readonly #keys = new Map<string, StoredKey>();
  readonly #signing = new Map<string, SigningKey>();
  readonly #slots = new Map<string, Map<string, number>>();
  /** Spent tokens by `<key>:<window start>`; a window past is dropped when a later window is spent from. */
  readonly #budgets = new Map<string, number>();

  async add(key: StoredKey): Promise<boolean> {
    if (this.#keys.has(key.id)) return false;
    this.#keys.set(key.id, key);
    return true;
  }

  async get(id: string): Promise<StoredKey | undefined> {
    return this.#keys.get(id);
  }

  async list(): Promise<StoredKey[]> {
    return [...this.#keys.values()];
  }

  async revoke(id: string, at: string): Promise<RevokeResult> {
    const key = this.#keys.get(id);
    if (!key) return "notFound";
    if (key.revokedAt !== undefined) return "alreadyRevoked";
    this.#keys.set(id, { ...key, revokedAt: at });
    return "revoked";
  }

  async hasKeys(): Promise<boolean> {
    return this.#keys.size > 0;
  }

  async signingKeys(): Promise<SigningKey[]> {
    return newestFirst([...this.#signing.values()]);
  }

  async addSigningKey(key: SigningKey): Promise<void> {
    this.#signing.set(key.id, key);
  }

  async removeSigningKey(id: string): Promise<boolean> {
    return this.#signing.delete(id);
  }

  async takeSlot(keyId: string, slot: string, expiresAtMs: number, limit: number, nowMs: number, replacing?: string): Promise<boolean> {
    const held = this.#held(keyId, nowMs);
    if (replacing !== undefined && replacing !== slot) held.delete(replacing);
    if (!held.has(slot) && held.size >= limit) return false;
    held.set(slot, expiresAtMs);
    return true;
  }

  async slots(keyId: string, nowMs: number): Promise<string[]> {
    return [...this.#held(keyId, nowMs).keys()];
  }

  async releaseSlots(keyId: string, slots: readonly string[]): Promise<void> {
    for (const slot of slots) this.#slots.get(keyId)?.delete(slot);
  }

  async spendTokens(keyId: string, windowStartMs: number, tokens: number, limit: number): Promise<boolean> {
    const name = `${keyId}:${windowStartMs}`;
    const spent = this.#budgets.get(name) ?? 0;
    if (spent + tokens > limit) return false;
    for (const old of this.#budgets.keys()) {
      if (old.startsWith(`${keyId}:`) && Number(old.slice(keyId.length + 1)) < windowStartMs) this.#budgets.delete(old);
    }
    this.#budgets.set(name, spent + tokens);
    return true;
  }

  #held(keyId: string, nowMs: number): Map<string, number> {
    let held = this.#slots.get(keyId);
    if (!held) this.#slots.set(keyId, (held = new Map()));
    for (const [slot, expiry] of held) if (expiry <= nowMs) held.delete(slot);
    return held;
  }

  async close(): Promise<void> {}
}
