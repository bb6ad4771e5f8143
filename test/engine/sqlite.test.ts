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
