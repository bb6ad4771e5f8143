import type { Logger } from "../../observability/logger.ts";
import { connectRedis, type RedisTarget } from "../redis/connection.ts";
import { withScripts, type ScriptedClient } from "../redis/scripts.ts";
import { RedisKeys } from "../redis/keys.ts";
import type { KeyStore, RevokeResult, SigningKey, StoredKey } from "./port.ts";
import { newestFirst } from "./signing-keys.ts";

/**
 * Keys in Redis, in two hashes under one hash tag (one Cluster slot): every key by id, and the
 * revoked ones with the time. Keys are never deleted, so adding (`HSETNX`) and revoking (`HSETNX`
 * on the revoked hash after the key is found) need no script.
 */
export class RedisKeyStore implements KeyStore {
  readonly kind = "redis";
  readonly #keys: RedisKeys;
  readonly #client: ScriptedClient;

  constructor(options: { readonly target: RedisTarget; readonly prefix?: string; readonly logger?: Logger }) {
    this.#keys = new RedisKeys(options.prefix ?? "ll");
    this.#client = withScripts(connectRedis(options.target, "lifeline-keys", { logger: options.logger }));
  }

  async add(key: StoredKey): Promise<boolean> {
    const { revokedAt: _revoked, ...stored } = key;
    return (await this.#client.hsetnx(this.#keys.apiKeys(), key.id, JSON.stringify(stored))) === 1;
  }

  async get(id: string): Promise<StoredKey | undefined> {
    const [json, revokedAt] = await Promise.all([
      this.#client.hget(this.#keys.apiKeys(), id),
      this.#client.hget(this.#keys.revokedApiKeys(), id),
    ]);
    return json === null ? undefined : withRevocation(JSON.parse(json) as StoredKey, revokedAt);
  }

  async list(): Promise<StoredKey[]> {
    const [all, revoked] = await Promise.all([
      this.#client.hgetall(this.#keys.apiKeys()),
      this.#client.hgetall(this.#keys.revokedApiKeys()),
    ]);
    return Object.values(all)
      .map((json) => JSON.parse(json) as StoredKey)
      .map((key) => withRevocation(key, revoked[key.id] ?? null))
      .sort((a, b) => (a.createdAt === b.createdAt ? a.id.localeCompare(b.id) : a.createdAt.localeCompare(b.createdAt)));
  }

  async revoke(id: string, at: string): Promise<RevokeResult> {
    if (!(await this.#client.hexists(this.#keys.apiKeys(), id))) return "notFound";
    return (await this.#client.hsetnx(this.#keys.revokedApiKeys(), id, at)) === 1 ? "revoked" : "alreadyRevoked";
  }

  async hasKeys(): Promise<boolean> {
    return (await this.#client.hlen(this.#keys.apiKeys())) > 0;
  }

  async signingKeys(): Promise<SigningKey[]> {
    return newestFirst(Object.values(await this.#client.hgetall(this.#keys.signingKeys())).map((json) => JSON.parse(json) as SigningKey));
  }

  async addSigningKey(key: SigningKey): Promise<void> {
    await this.#client.hsetnx(this.#keys.signingKeys(), key.id, JSON.stringify(key));
  }

  async removeSigningKey(id: string): Promise<boolean> {
    return (await this.#client.hdel(this.#keys.signingKeys(), id)) === 1;
  }

  async takeSlot(keyId: string, slot: string, expiresAtMs: number, limit: number, nowMs: number, replacing?: string): Promise<boolean> {
    return (await this.#client.llSlotTake(this.#keys.answerSlots(keyId), slot, expiresAtMs, nowMs, limit, replacing ?? "")) === 1;
  }

  async slots(keyId: string, nowMs: number): Promise<string[]> {
    return this.#client.zrangebyscore(this.#keys.answerSlots(keyId), `(${nowMs}`, "+inf");
  }

  async releaseSlots(keyId: string, slots: readonly string[]): Promise<void> {
    if (slots.length > 0) await this.#client.zrem(this.#keys.answerSlots(keyId), ...slots);
  }

  async spendTokens(keyId: string, windowStartMs: number, tokens: number, limit: number): Promise<boolean> {
    // The counter outlives its window by one more, so a clock a little behind still finds it.
    const spent = await this.#client.llBudgetSpend(this.#keys.tokenBudget(keyId, windowStartMs), tokens, limit, 120_000);
    return spent !== -1;
  }

  async close(): Promise<void> {
    this.#client.disconnect();
  }
}

function withRevocation(key: StoredKey, revokedAt: string | null): StoredKey {
  return revokedAt === null ? key : { ...key, revokedAt };
}
