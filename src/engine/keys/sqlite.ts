import { mkdirSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import type { Scope } from "../../core/api-keys.ts";
import type { KeyStore, RevokeResult, SigningKey, StoredKey } from "./port.ts";
import { newestFirst } from "./signing-keys.ts";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS api_keys (
  id          TEXT PRIMARY KEY,
  tenant      TEXT NOT NULL,
  scopes      TEXT NOT NULL,                  -- comma-separated
  secret_hash TEXT NOT NULL,                  -- SHA-256 of the secret, hex
  created_at  TEXT NOT NULL,
  revoked_at  TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS answer_slots (
  key_id      TEXT NOT NULL,
  slot        TEXT NOT NULL,
  expires_at  INTEGER NOT NULL,               -- ms since the epoch
  PRIMARY KEY (key_id, slot)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS token_budgets (
  key_id       TEXT NOT NULL,
  window_start INTEGER NOT NULL,              -- ms since the epoch
  spent        INTEGER NOT NULL,
  PRIMARY KEY (key_id, window_start)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS signing_keys (
  id          TEXT PRIMARY KEY,
  secret      TEXT NOT NULL,
  created_at  TEXT NOT NULL
) WITHOUT ROWID;
`;

interface Row {
  id: string;
  tenant: string;
  scopes: string;
  secret_hash: string;
  created_at: string;
  revoked_at: string | null;
}

/** Keys in a sqlite file of their own (`keys.db`) in the engine's data folder, shared by every process on it. */
export class SqliteKeyStore implements KeyStore {
  readonly kind = "sqlite";
  readonly #db: Database.Database;

  constructor(options: { readonly dataDir: string }) {
    mkdirSync(options.dataDir, { recursive: true });
    this.#db = new Database(join(options.dataDir, "keys.db"));
    this.#db.pragma("journal_mode = WAL");
    this.#db.pragma("busy_timeout = 5000");
    this.#db.exec(SCHEMA);
  }

  async add(key: StoredKey): Promise<boolean> {
    const result = this.#db
      .prepare("INSERT OR IGNORE INTO api_keys (id, tenant, scopes, secret_hash, created_at) VALUES (?, ?, ?, ?, ?)")
      .run(key.id, key.tenant, key.scopes.join(","), key.secretHash, key.createdAt);
    return result.changes === 1;
  }

  async get(id: string): Promise<StoredKey | undefined> {
    const row = this.#db.prepare<[string], Row>("SELECT * FROM api_keys WHERE id = ?").get(id);
    return row ? keyOf(row) : undefined;
  }

  async list(): Promise<StoredKey[]> {
    return this.#db.prepare<[], Row>("SELECT * FROM api_keys ORDER BY created_at, id").all().map(keyOf);
  }

  async revoke(id: string, at: string): Promise<RevokeResult> {
    const revoked = this.#db.prepare("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL").run(at, id);
    if (revoked.changes === 1) return "revoked";
    return (await this.get(id)) ? "alreadyRevoked" : "notFound";
  }

  async hasKeys(): Promise<boolean> {
    return this.#db.prepare("SELECT 1 FROM api_keys LIMIT 1").get() !== undefined;
  }

  async signingKeys(): Promise<SigningKey[]> {
    const rows = this.#db.prepare<[], { id: string; secret: string; created_at: string }>("SELECT * FROM signing_keys").all();
    return newestFirst(rows.map((r) => ({ id: r.id, secret: r.secret, createdAt: r.created_at })));
  }

  async addSigningKey(key: SigningKey): Promise<void> {
    this.#db.prepare("INSERT OR IGNORE INTO signing_keys (id, secret, created_at) VALUES (?, ?, ?)").run(key.id, key.secret, key.createdAt);
  }

  async removeSigningKey(id: string): Promise<boolean> {
    return this.#db.prepare("DELETE FROM signing_keys WHERE id = ?").run(id).changes === 1;
  }

  async takeSlot(keyId: string, slot: string, expiresAtMs: number, limit: number, nowMs: number, replacing?: string): Promise<boolean> {
    return this.#db
      .transaction((): boolean => {
        this.#db.prepare("DELETE FROM answer_slots WHERE key_id = ? AND expires_at <= ?").run(keyId, nowMs);
        if (replacing !== undefined && replacing !== slot)
          this.#db.prepare("DELETE FROM answer_slots WHERE key_id = ? AND slot = ?").run(keyId, replacing);
        const held = this.#db.prepare("SELECT 1 FROM answer_slots WHERE key_id = ? AND slot = ?").get(keyId, slot) !== undefined;
        const count = (this.#db.prepare("SELECT COUNT(*) AS n FROM answer_slots WHERE key_id = ?").get(keyId) as { n: number }).n;
        if (!held && count >= limit) return false;
        this.#db.prepare("INSERT OR REPLACE INTO answer_slots (key_id, slot, expires_at) VALUES (?, ?, ?)").run(keyId, slot, expiresAtMs);
        return true;
      })
      .immediate();
  }

  async slots(keyId: string, nowMs: number): Promise<string[]> {
    return this.#db
      .prepare<[string, number], { slot: string }>("SELECT slot FROM answer_slots WHERE key_id = ? AND expires_at > ?")
      .all(keyId, nowMs)
      .map((r) => r.slot);
  }

  async releaseSlots(keyId: string, slots: readonly string[]): Promise<void> {
    const remove = this.#db.prepare("DELETE FROM answer_slots WHERE key_id = ? AND slot = ?");
    this.#db.transaction(() => {
      for (const slot of slots) remove.run(keyId, slot);
    })();
  }

  async spendTokens(keyId: string, windowStartMs: number, tokens: number, limit: number): Promise<boolean> {
    return this.#db
      .transaction((): boolean => {
        const row = this.#db
          .prepare<[string, number], { spent: number }>("SELECT spent FROM token_budgets WHERE key_id = ? AND window_start = ?")
          .get(keyId, windowStartMs);
        if ((row?.spent ?? 0) + tokens > limit) return false;
        this.#db.prepare("DELETE FROM token_budgets WHERE key_id = ? AND window_start < ?").run(keyId, windowStartMs);
        this.#db
          .prepare(
            "INSERT INTO token_budgets (key_id, window_start, spent) VALUES (?, ?, ?) ON CONFLICT (key_id, window_start) DO UPDATE SET spent = spent + excluded.spent",
          )
          .run(keyId, windowStartMs, tokens);
        return true;
      })
      .immediate();
  }

  async close(): Promise<void> {
    if (this.#db.open) this.#db.close();
  }
}

function keyOf(row: Row): StoredKey {
  return {
    id: row.id,
    tenant: row.tenant,
    scopes: row.scopes.split(",") as Scope[],
    secretHash: row.secret_hash,
    createdAt: row.created_at,
    ...(row.revoked_at === null ? {} : { revokedAt: row.revoked_at }),
  };
}
