/** The sqlite schema; `user_version` says which revision a data file has. */
export const SCHEMA_VERSION = 1;

export const SCHEMA = `
CREATE TABLE IF NOT EXISTS generations (
  seq             INTEGER PRIMARY KEY,          -- creation order: the queue is oldest first
  id              TEXT NOT NULL UNIQUE,
  last_offset     INTEGER NOT NULL,
  terminal        INTEGER NOT NULL DEFAULT 0,
  fence           INTEGER NOT NULL DEFAULT 0,
  job             TEXT NOT NULL CHECK (job IN ('queued', 'leased', 'done')),
  lease_until     INTEGER NOT NULL DEFAULT 0,   -- epoch milliseconds
  holder          TEXT,
  idempotency_key TEXT UNIQUE,
  request_json    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS generations_open_jobs ON generations (job, seq) WHERE job <> 'done';
CREATE TABLE IF NOT EXISTS entries (
  generation_id TEXT NOT NULL,
  offset        INTEGER NOT NULL,
  at            TEXT NOT NULL,
  body          TEXT NOT NULL,                  -- canonical JSON of the entry without offset and at
  PRIMARY KEY (generation_id, offset)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chats (              -- a door's chat and the generation that answers it now
  chat_id       TEXT PRIMARY KEY,
  generation_id TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS log_restarts (       -- one row: the checkpointer's thread commits it to start the log over (decision 077)
  id            INTEGER PRIMARY KEY CHECK (id = 1),
  count         INTEGER NOT NULL
);
INSERT OR IGNORE INTO log_restarts (id, count) VALUES (1, 0);
CREATE TABLE IF NOT EXISTS changes (            -- the change feed (decision 036): never a delta
  seq           INTEGER PRIMARY KEY,
  generation_id TEXT NOT NULL,
  type          TEXT NOT NULL
);
`;

/** What the checkpointer's thread commits to start the write-ahead log over itself (decision 077). */
export const RESTART_LOG_SQL = "UPDATE log_restarts SET count = count + 1 WHERE id = 1";
