import type { Entry } from "../../core/entries.ts";
import type { GenerationsPage, LogHead } from "../port.ts";
import { checkFinishedLog, pageOf, type Archive } from "./port.ts";

/** The archive in one process's memory, for tests: entries kept as their JSON text, as the stores keep them. */
export class MemoryArchive implements Archive {
  readonly kind = "memory";
  readonly #logs = new Map<string, readonly string[]>();
  readonly #positions = new Map<string, string>();

  async store(id: string, entries: readonly Entry[]): Promise<void> {
    checkFinishedLog(id, entries);
    if (!this.#logs.has(id))
      this.#logs.set(
        id,
        entries.map((entry) => JSON.stringify(entry)),
      );
  }

  async head(id: string): Promise<LogHead | undefined> {
    const log = this.#logs.get(id);
    return log ? { lastOffset: log.length, terminal: true } : undefined;
  }

  async read(id: string, afterOffset: number, limit: number): Promise<Entry[]> {
    const log = this.#logs.get(id) ?? [];
    return log.slice(Math.max(0, afterOffset), Math.max(0, afterOffset) + limit).map((text) => JSON.parse(text) as Entry);
  }

  async generations(after: string | undefined, limit: number): Promise<GenerationsPage> {
    const ids = [...this.#logs.keys()].sort().filter((id) => after === undefined || id > after);
    return pageOf(ids.slice(0, limit + 1), limit);
  }

  async position(reader: string): Promise<string | undefined> {
    return this.#positions.get(reader);
  }

  async setPosition(reader: string, position: string): Promise<void> {
    this.#positions.set(reader, position);
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {}
}
