import { join } from "node:path";
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { SqliteEngine } from "../../src/engine/sqlite/sqlite-engine.ts";
import { tempDir } from "../support/temp-dir.ts";
import { engineConformance } from "./conformance.ts";

// Two engines on one file behave like two processes sharing a data directory.
engineConformance("sqlite", async () => {
  const dir = tempDir();
  const engine = new SqliteEngine({ dataDir: dir.path });
  const peer = new SqliteEngine({ dataDir: dir.path });
  return {
    engine,
    peer,
    close: async () => {
      await engine.close();
      await peer.close();
      dir.remove();
    },
  };
});

describe("a sqlite data file from before the chats table", () => {
  it("still opens read-only (lifeline replay), and its logs read as before", async () => {
    const dir = tempDir();
    try {
      const writer = new SqliteEngine({ dataDir: dir.path });
      const { id } = await writer.create({ model: "sim", messages: [{ role: "user", content: "old file" }] });
      await writer.close();
      const raw = new Database(join(dir.path, "lifeline.db"));
      raw.exec("DROP TABLE chats");
      raw.close();
      const reader = new SqliteEngine({ dataDir: dir.path, readOnly: true });
      expect((await reader.read(id, 0, 10)).map((e) => e.type)).toEqual(["created"]);
      await reader.close();
    } finally {
      dir.remove();
    }
  });
});
