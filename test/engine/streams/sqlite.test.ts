import { SqliteStreamStore } from "../../../src/engine/streams/sqlite.ts";
import { tempDir } from "../../support/temp-dir.ts";
import { streamStoreConformance } from "./conformance.ts";

// Two stores on one data folder: two processes' views of the same file.
streamStoreConformance("sqlite", async () => {
  const dir = tempDir("lifeline-streams-");
  const store = new SqliteStreamStore({ dataDir: dir.path });
  const peer = new SqliteStreamStore({ dataDir: dir.path });
  return {
    store,
    peer,
    close: async () => {
      await store.close();
      await peer.close();
      dir.remove();
    },
  };
});
