/**
 * The storage port of the Durable Streams door (decision 026): named append-only streams of
 * arbitrary bytes, unlike generation logs. Adapters live beside this file (`memory`, `sqlite`,
 * `redis`) and pass one conformance suite (test/engine/streams).
 *
 * The port is deliberately small: a stream is one record (its configuration and writer state) and
 * its chunks (the messages appended, at positions 1, 2, 3 …). Every change is one `commit`, a
 * compare-and-set on the record's revision that writes the new record and the new chunks together,
 * all or nothing. What a change means (the protocol's rules: producers, `Stream-Seq`, closing,
 * forks) is decided outside the adapters, in `src/engine/streams/stream-rules.ts`, on a record read
 * just before; a commit that lost a race says `conflict` and the caller decides again.
 *
 * Not in the contract: how chunks are laid out, and when expired streams are reclaimed (an expired
 * record is hidden by the rules at once; adapters may drop it later).
 */
export interface StreamStore {
  /** A short name for logs: `memory`, `sqlite`, `redis`. */
  readonly kind: string;

  /** The record of `name`, or `undefined` when there is none. */
  load(name: string): Promise<StoredStream | undefined>;

  /**
   * Writes `change` when the stored revision is still `expected` (`undefined`: no record stands).
   * `conflict` when another commit came first. Wakes the stream's waiters.
   */
  commit(name: string, expected: string | undefined, change: StreamChange): Promise<CommitResult>;

  /**
   * Chunks at positions above `afterPosition`, in order, at least one (when one exists) and then
   * as many as fit in `maxBytes`.
   */
  read(name: string, afterPosition: number, maxBytes: number): Promise<StreamChunk[]>;

  /** Records a read or write for a sliding TTL, without a revision (no commit, no wake-up). */
  touch(name: string, atMs: number): Promise<void>;

  /**
   * Resolves once the record's revision is no longer `revision` (a commit, a delete), or when
   * `signal` aborts. No polling loop per waiter; it may resolve early, callers look again.
   */
  wait(name: string, revision: string, signal: AbortSignal): Promise<void>;

  /** Releases connections and timers; blocked waits resolve. */
  close(): Promise<void>;
}

/** A record as stored, with the revision a commit compares against. */
export interface StoredStream {
  readonly revision: string;
  readonly record: StreamRecord;
  /** The last `touch` (or the record's creation), epoch milliseconds. */
  readonly touchedAt: number;
}

/** Everything a stream is besides its chunks: JSON, so every adapter stores it as one value. */
export interface StreamRecord {
  /** Unique per creation of this name: a stream deleted and created again is another stream. */
  readonly incarnation: string;
  /** Bumped by every commit; `<incarnation>.<version>` is the revision. */
  readonly version: number;
  /** The media type as created, e.g. `application/json; charset=utf-8`. */
  readonly contentType: string;
  readonly ttlSeconds?: number;
  /** The `Stream-Expires-At` value as given, and its instant. */
  readonly expiresAt?: string;
  readonly expiresAtMs?: number;
  readonly createdAt: number;
  /** Position of the last chunk; 0 when empty. */
  readonly tail: number;
  readonly closed: boolean;
  /** The producer request that closed the stream, so its retry is a duplicate. */
  readonly closedBy?: ProducerStamp;
  /** The last `Stream-Seq` accepted. */
  readonly lastSeq?: string;
  /** Idempotent producers: id → epoch and the last sequence accepted in it. */
  readonly producers: Readonly<Record<string, { readonly epoch: number; readonly seq: number }>>;
  /** Forks: how many streams were forked from this one and still stand. */
  readonly refCount: number;
  /** Deleted while forks still stand: hidden (410), its name not reusable. */
  readonly softDeleted: boolean;
  /** For a fork: the source's name, the position it forked at and the sub-offset asked for. */
  readonly forkedFrom?: string;
  readonly forkPosition?: number;
  readonly forkSubOffset?: number;
}

export interface ProducerStamp {
  readonly id: string;
  readonly epoch: number;
  readonly seq: number;
}

/** One message as appended (a JSON stream stores one chunk per message). */
export interface StreamChunk {
  readonly position: number;
  readonly data: Buffer;
}

/** A commit: the record to store (`null` deletes the stream and its chunks) and chunks to add. */
export interface StreamChange {
  readonly record: StreamRecord | null;
  readonly chunks: readonly StreamChunk[];
  /** Drop every chunk first (a name created again after its stream expired). */
  readonly replaceChunks?: boolean;
}

export type CommitResult = "committed" | "conflict";

/** The revision of a record: what `commit` compares and `wait` watches. */
export function revisionOf(record: StreamRecord): string {
  return `${record.incarnation}.${record.version}`;
}
