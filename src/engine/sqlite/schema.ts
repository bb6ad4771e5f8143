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
CREATE TABLE IF NOT EXISTS changes (            -- the change feed (decision 036): never a delta
  seq           INTEGER PRIMARY KEY,
  generation_id TEXT NOT NULL,
  type          TEXT NOT NULL
);
`;
