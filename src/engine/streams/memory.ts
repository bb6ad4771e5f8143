import { Wakeups } from "../wakeups.ts";
import { revisionOf, type CommitResult, type StoredStream, type StreamChange, type StreamChunk, type StreamStore } from "./port.ts";
import { takeChunks } from "./take-chunks.ts";

interface Held {
  stored: StoredStream;
  chunks: StreamChunk[];
}

/** Streams in the process's memory: for tests and trying things out. Nothing survives. */
export class MemoryStreamStore implements StreamStore {
  readonly kind = "memory";
  readonly #streams = new Map<string, Held>();
  readonly #wakeups = new Wakeups();

  async load(name: string): Promise<StoredStream | undefined> {
    return this.#streams.get(name)?.stored;
  }

  async commit(name: string, expected: string | undefined, change: StreamChange): Promise<CommitResult> {
    const held = this.#streams.get(name);
    if (held?.stored.revision !== expected) return "conflict";
    if (change.record === null) this.#streams.delete(name);
    else {
      const chunks = held && !change.replaceChunks ? held.chunks : [];
      chunks.push(...change.chunks.map((c) => ({ position: c.position, data: Buffer.from(c.data) })));
      const touchedAt = held && !change.replaceChunks ? held.stored.touchedAt : change.record.createdAt;
      this.#streams.set(name, { stored: { revision: revisionOf(change.record), record: change.record, touchedAt }, chunks });
    }
    this.#wakeups.wake(name);
    return "committed";
  }

  async read(name: string, afterPosition: number, maxBytes: number): Promise<StreamChunk[]> {
    const chunks = this.#streams.get(name)?.chunks ?? [];
    // Positions are 1, 2, 3 … with no gap: chunk p sits at index p - 1.
    return takeChunks(chunks.slice(afterPosition), maxBytes);
  }

  async touch(name: string, atMs: number): Promise<void> {
    const held = this.#streams.get(name);
    if (held && atMs > held.stored.touchedAt) held.stored = { ...held.stored, touchedAt: atMs };
  }

  async wait(name: string, revision: string, signal: AbortSignal): Promise<void> {
    if (this.#streams.get(name)?.stored.revision !== revision) return;
    await this.#wakeups.next(name, signal);
  }

  async close(): Promise<void> {
    this.#wakeups.wakeAll();
  }
}
