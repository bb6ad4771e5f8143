import { randomUUID } from "node:crypto";
import type { StoredStream, StreamChunk, StreamRecord, StreamStore } from "./port.ts";
import {
  forkExpiry,
  isExpired,
  isJsonStream,
  mediaTypeOf,
  planAppend,
  sameConfig,
  type AppendOutcome,
  type AppendRequest,
  type StreamConfig,
} from "./stream-rules.ts";

/** How many times a decision is taken again after losing a race to another commit. */
const MAX_ATTEMPTS = 64;

/** How a stream stands, as a reader or HEAD sees it. */
export type StreamLookup =
  { readonly kind: "found"; readonly stored: StoredStream } | { readonly kind: "notFound" } | { readonly kind: "gone" };

export interface CreateRequest extends StreamConfig {
  readonly expiresAtMs?: number;
  /** The initial data as one chunk (a JSON body validated and flattened); none for an empty stream. */
  readonly data: Buffer | undefined;
}

export type CreateOutcome =
  | { readonly kind: "created"; readonly record: StreamRecord }
  | { readonly kind: "exists"; readonly record: StreamRecord }
  | { readonly kind: "configConflict" }
  | { readonly kind: "nameHeldByForks" }
  | { readonly kind: "sourceNotFound" }
  | { readonly kind: "sourceGone" }
  | { readonly kind: "forkContentTypeMismatch" }
  | { readonly kind: "forkOffsetBeyondTail" }
  | { readonly kind: "subOffsetInvalid" };

export type StreamAppendOutcome = AppendOutcome | { readonly kind: "notFound" } | { readonly kind: "gone" };

export type DeleteOutcome = "deleted" | "notFound" | "gone";

/** A commit lost more races in a row than a stream ever should see: the store is thrashing. */
export class StreamContentionError extends Error {
  constructor(name: string) {
    super(`the stream ${name} changed under every one of ${MAX_ATTEMPTS} attempts`);
  }
}

/**
 * Durable Streams over a {@link StreamStore}: each operation reads the record, decides with the
 * protocol's rules and commits with a compare-and-set, again when another commit came first. So
 * validation and append are one atomic step per stream on every adapter, across processes.
 */
export class Streams {
  constructor(
    readonly store: StreamStore,
    private readonly now: () => number = Date.now,
  ) {}

  /** The stream as clients see it: expired streams are gone (or soft-deleted while forks stand). */
  async lookup(name: string): Promise<StreamLookup> {
    const stored = await this.#live(name);
    if (!stored) return { kind: "notFound" };
    if (stored.record.softDeleted) return { kind: "gone" };
    return { kind: "found", stored };
  }

  async create(name: string, request: CreateRequest): Promise<CreateOutcome> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const raw = await this.store.load(name);
      const stored = raw && this.#hidden(raw) ? undefined : raw;
      if (stored) {
        // Deleted, or expired, while forks of it stand: the name stays taken until they are gone.
        if (stored.record.softDeleted || isExpired(stored, this.now())) {
          await this.#live(name);
          return { kind: "nameHeldByForks" };
        }
        return sameConfig(stored.record, request) ? { kind: "exists", record: stored.record } : { kind: "configConflict" };
      }
      const planned = request.forkedFrom === undefined ? this.#plainStream(request) : await this.#fork(request.forkedFrom, request);
      if (planned.kind !== "planned") return planned;
      const { record, chunks } = planned;
      // An expired stream's name is free again: its record and chunks are replaced.
      const result = await this.store.commit(name, raw?.revision, { record, chunks, replaceChunks: raw !== undefined });
      if (result === "committed") {
        if (raw) await this.#releaseSource(raw.record);
        return { kind: "created", record };
      }
      if (request.forkedFrom !== undefined) await this.#changeRefCount(request.forkedFrom, -1);
    }
    throw new StreamContentionError(name);
  }

  async append(name: string, request: AppendRequest): Promise<StreamAppendOutcome> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const stored = await this.#live(name);
      if (!stored) return { kind: "notFound" };
      if (stored.record.softDeleted) return { kind: "gone" };
      const plan = planAppend(stored.record, request);
      if (!plan.next) return plan.outcome;
      const result = await this.store.commit(name, stored.revision, { record: plan.next, chunks: plan.chunk ? [plan.chunk] : [] });
      if (result === "committed") {
        await this.store.touch(name, this.now());
        return plan.outcome;
      }
    }
    throw new StreamContentionError(name);
  }

  async delete(name: string): Promise<DeleteOutcome> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const stored = await this.#live(name);
      if (!stored) return "notFound";
      if (stored.record.softDeleted) return "gone";
      // A stream that forks were made from stays, hidden, until the last of them is deleted.
      const record = stored.record.refCount > 0 ? { ...stored.record, version: stored.record.version + 1, softDeleted: true } : null;
      const result = await this.store.commit(name, stored.revision, { record, chunks: [] });
      if (result === "committed") {
        if (record === null) await this.#releaseSource(stored.record);
        return "deleted";
      }
    }
    throw new StreamContentionError(name);
  }

  /** Chunks after `afterPosition` of a stream, at most about `maxBytes`. */
  read(name: string, afterPosition: number, maxBytes: number): Promise<StreamChunk[]> {
    return this.store.read(name, afterPosition, maxBytes);
  }

  /** A read or write for the sliding TTL (not HEAD). */
  touch(name: string): Promise<void> {
    return this.store.touch(name, this.now());
  }

  /** Resolves when the stream changes after `revision` (or `signal` aborts). */
  wait(name: string, revision: string, signal: AbortSignal): Promise<void> {
    return this.store.wait(name, revision, signal);
  }

  /** The record, unless expired; an expired one is removed (or soft-deleted while forks stand). */
  async #live(name: string): Promise<StoredStream | undefined> {
    const stored = await this.store.load(name);
    if (!stored || !isExpired(stored, this.now()) || stored.record.softDeleted) return stored;
    if (stored.record.refCount > 0) {
      const record = { ...stored.record, version: stored.record.version + 1, softDeleted: true };
      await this.store.commit(name, stored.revision, { record, chunks: [] });
      return { ...stored, record };
    }
    if ((await this.store.commit(name, stored.revision, { record: null, chunks: [] })) === "committed")
      await this.#releaseSource(stored.record);
    return undefined;
  }

  /** Whether a stored record no longer counts as standing for a create: expired with no forks. */
  #hidden(stored: StoredStream): boolean {
    return !stored.record.softDeleted && stored.record.refCount === 0 && isExpired(stored, this.now());
  }

  #plainStream(request: CreateRequest): { kind: "planned"; record: StreamRecord; chunks: StreamChunk[] } {
    const record = this.#newRecord(request, {});
    return request.data
      ? { kind: "planned", record: { ...record, tail: 1 }, chunks: [{ position: 1, data: request.data }] }
      : { kind: "planned", record, chunks: [] };
  }

  #newRecord(
    request: Pick<CreateRequest, "contentType" | "closed" | "ttlSeconds" | "expiresAt" | "expiresAtMs">,
    fork: Partial<StreamRecord>,
  ): StreamRecord {
    const now = this.now();
    return {
      incarnation: randomUUID().slice(0, 8),
      version: 1,
      contentType: request.contentType,
      ...(request.ttlSeconds !== undefined ? { ttlSeconds: request.ttlSeconds } : {}),
      ...(request.expiresAt !== undefined ? { expiresAt: request.expiresAt } : {}),
      ...(request.expiresAtMs !== undefined ? { expiresAtMs: request.expiresAtMs } : {}),
      createdAt: now,
      tail: 0,
      closed: request.closed,
      producers: {},
      refCount: 0,
      softDeleted: false,
      ...fork,
    };
  }

  /**
   * A fork copies the source's chunks up to the fork position (decision 026: copy on fork), plus
   * the part of the next chunk a sub-offset asks for, and counts itself on the source.
   */
  async #fork(
    sourceName: string,
    request: CreateRequest,
  ): Promise<{ kind: "planned"; record: StreamRecord; chunks: StreamChunk[] } | Exclude<CreateOutcome, { record: StreamRecord }>> {
    const source = await this.lookup(sourceName);
    if (source.kind === "notFound") return { kind: "sourceNotFound" };
    if (source.kind === "gone") return { kind: "sourceGone" };
    const src = source.stored.record;
    const contentType = request.contentType === "" ? src.contentType : request.contentType;
    if (mediaTypeOf(contentType) !== mediaTypeOf(src.contentType)) return { kind: "forkContentTypeMismatch" };
    const position = request.forkPosition ?? src.tail;
    if (position > src.tail) return { kind: "forkOffsetBeyondTail" };
    const chunks: StreamChunk[] = [];
    let after = 0;
    while (after < src.tail) {
      const page = await this.store.read(sourceName, after, 4 << 20);
      if (page.length === 0) break;
      chunks.push(...page);
      after = page[page.length - 1]?.position ?? src.tail;
    }
    const inherited = chunks.filter((chunk) => chunk.position <= position);
    let tail = position;
    const subOffset = request.forkSubOffset ?? 0;
    if (subOffset > 0) {
      const next = chunks.find((chunk) => chunk.position === position + 1);
      const prefix = next && prefixOf(next.data, subOffset, isJsonStream(src));
      if (prefix === undefined) return { kind: "subOffsetInvalid" };
      tail += 1;
      inherited.push({ position: tail, data: prefix });
    }
    if (request.data) {
      tail += 1;
      inherited.push({ position: tail, data: request.data });
    }
    // Counted before the fork is written: a source is never collected while a fork reads from it.
    const counted = await this.#changeRefCount(sourceName, +1);
    if (!counted) return { kind: "sourceNotFound" };
    const fork = { tail, forkedFrom: sourceName, forkPosition: position, ...(subOffset > 0 ? { forkSubOffset: subOffset } : {}) };
    const record = this.#newRecord({ contentType, closed: request.closed, ...forkExpiry(request, src) }, fork);
    return { kind: "planned", record, chunks: inherited };
  }

  /** Adds `delta` to a stream's fork count; a soft-deleted stream whose count reaches 0 is removed. */
  async #changeRefCount(name: string, delta: number): Promise<boolean> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const stored = await this.store.load(name);
      if (!stored) return false;
      const refCount = Math.max(0, stored.record.refCount + delta);
      const collect = refCount === 0 && stored.record.softDeleted;
      const record = collect ? null : { ...stored.record, version: stored.record.version + 1, refCount };
      if ((await this.store.commit(name, stored.revision, { record, chunks: [] })) === "committed") {
        if (collect) await this.#releaseSource(stored.record);
        return true;
      }
    }
    throw new StreamContentionError(name);
  }

  /** A stream that is gone for good no longer holds its source: the collection cascades. */
  async #releaseSource(record: StreamRecord): Promise<void> {
    if (record.forkedFrom !== undefined) await this.#changeRefCount(record.forkedFrom, -1);
  }
}

/** The first `count` bytes (or JSON messages) of a chunk; `undefined` when it has fewer. */
function prefixOf(data: Buffer, count: number, json: boolean): Buffer | undefined {
  if (!json) return count <= data.length ? data.subarray(0, count) : undefined;
  const messages = JSON.parse(`[${data.toString("utf8")}]`) as unknown[];
  if (count > messages.length) return undefined;
  return Buffer.from(
    messages
      .slice(0, count)
      .map((m) => JSON.stringify(m))
      .join(","),
    "utf8",
  );
}
