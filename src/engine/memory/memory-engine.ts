import { createdEntry, idempotencyName } from "../created-entry.ts";
import { canonicalJson } from "../../core/canonical.ts";
import { stampEntry, type Entry, type EntryBody, type EntryType, type GenerationRequest } from "../../core/entries.ts";
import { decideAppend, endsWithTerminal } from "../append-rules.ts";
import { newGenerationId } from "../ids.ts";
import type {
  AppendResult,
  CancelResult,
  ChangesPage,
  Claim,
  CreateOptions,
  CreateResult,
  Engine,
  GenerationsPage,
  Lease,
  LogHead,
  RenewResult,
} from "../port.ts";
import { Wakeups } from "../wakeups.ts";

interface Generation {
  readonly id: string;
  readonly seq: number;
  readonly entries: Entry[];
  /** Canonical JSON of each entry's body, index = offset - 1. */
  readonly bodies: string[];
  terminal: boolean;
  fence: number;
  job: "queued" | "leased" | "done";
  leaseUntil: number;
  holder: string | undefined;
}

const JOBS = "jobs";
const FEED = "feed";

/** One record of the change feed (decision 036); its position is `seq`. */
interface FeedRecord {
  readonly seq: number;
  readonly id: string;
  readonly type: EntryType;
}

/** Everything in the process's memory: for tests and for trying things out. Nothing survives. */
export class MemoryEngine implements Engine {
  readonly kind = "memory";
  readonly replicatesAsynchronously = false;
  readonly parallelClaims = 1;
  readonly #generations = new Map<string, Generation>();
  readonly #idempotency = new Map<string, { id: string; request: string }>();
  readonly #chats = new Map<string, string>();
  readonly #wakeups = new Wakeups();
  /** The change feed, oldest first; trimmed to `#feedLimit` records. */
  readonly #feed: FeedRecord[] = [];
  readonly #feedLimit: number;
  #feedSeq = 0;
  #seq = 0;
  #closed = false;

  /** @param options.feedLimit - records of the change feed kept (older ones are dropped: a reader behind them sees a gap). */
  constructor(options: { readonly feedLimit?: number } = {}) {
    this.#feedLimit = options.feedLimit ?? 100_000;
  }

  async findCreated(request: GenerationRequest, options: CreateOptions): Promise<Exclude<CreateResult, { kind: "created" }> | undefined> {
    return this.#found(idempotencyName(options), canonicalJson(request));
  }

  /** What a create under `key` answers when the key was seen before; `undefined` when it is new. */
  #found(key: string | undefined, requestJson: string): Exclude<CreateResult, { kind: "created" }> | undefined {
    const seen = key === undefined ? undefined : this.#idempotency.get(key);
    return seen && { kind: seen.request === requestJson ? "existing" : "idempotencyConflict", id: seen.id };
  }

  async create(request: GenerationRequest, options: CreateOptions = {}): Promise<CreateResult> {
    const requestJson = canonicalJson(request);
    const key = idempotencyName(options);
    const found = this.#found(key, requestJson);
    if (found) return found;
    const id = newGenerationId();
    const body = createdEntry(request, options);
    const generation: Generation = {
      id,
      seq: ++this.#seq,
      entries: [stampEntry(body, 1, new Date().toISOString())],
      bodies: [canonicalJson(body)],
      terminal: false,
      fence: 0,
      job: "queued",
      leaseUntil: 0,
      holder: undefined,
    };
    this.#generations.set(id, generation);
    if (key !== undefined) this.#idempotency.set(key, { id, request: requestJson });
    this.#record(id, "created");
    this.#wakeups.wake(id);
    this.#wakeups.wake(JOBS);
    return { kind: "created", id };
  }

  async append(id: string, fence: number, expectedOffset: number, entries: readonly EntryBody[]): Promise<AppendResult> {
    const g = this.#generations.get(id);
    if (!g) return { kind: "notFound" };
    const state = { lastOffset: g.entries.length, terminal: g.terminal, fence: g.fence };
    const result = decideAppend(state, fence, expectedOffset, entries, (offset) => g.bodies[offset - 1]);
    if (result.kind !== "appended") return result;
    this.#appendUnchecked(g, entries);
    return result;
  }

  #appendUnchecked(g: Generation, entries: readonly EntryBody[]): void {
    const at = new Date().toISOString();
    for (const body of entries) {
      g.entries.push(stampEntry(body, g.entries.length + 1, at));
      g.bodies.push(canonicalJson(body));
    }
    const last = entries.at(-1);
    if (last && endsWithTerminal(entries)) {
      g.terminal = true;
      g.job = "done";
      this.#record(g.id, last.type);
    } else {
      // A retry or a rewind is rare and cheap to note; a delta never is noted.
      for (const body of entries) if (body.type === "retrying" || body.type === "rewind") this.#record(g.id, body.type);
    }
    this.#wakeups.wake(g.id);
  }

  async read(id: string, afterOffset: number, limit: number): Promise<Entry[]> {
    const g = this.#generations.get(id);
    if (!g) return [];
    return g.entries.slice(Math.max(0, afterOffset), Math.max(0, afterOffset) + limit);
  }

  async head(id: string): Promise<LogHead | undefined> {
    const g = this.#generations.get(id);
    return g && { lastOffset: g.entries.length, terminal: g.terminal };
  }

  async wait(id: string, afterOffset: number, signal: AbortSignal): Promise<void> {
    const g = this.#generations.get(id);
    if (this.#closed || (g && g.entries.length > afterOffset)) return;
    await this.#wakeups.next(id, signal);
  }

  async claim(worker: string, leaseMs: number, signal: AbortSignal): Promise<Claim | undefined> {
    while (!signal.aborted && !this.#closed) {
      const now = Date.now();
      let best: Generation | undefined;
      let nextExpiry = Infinity;
      for (const g of this.#generations.values()) {
        const claimable = g.job === "queued" || (g.job === "leased" && g.leaseUntil <= now);
        if (claimable && (!best || g.seq < best.seq)) best = g;
        if (g.job === "leased" && g.leaseUntil > now) nextExpiry = Math.min(nextExpiry, g.leaseUntil);
      }
      if (best) {
        const takeover = best.job === "leased";
        best.fence += 1;
        best.job = "leased";
        best.leaseUntil = now + leaseMs;
        best.holder = worker;
        this.#record(best.id, "started");
        return { id: best.id, fence: best.fence, takeover };
      }
      await this.#wakeups.next(JOBS, signal, nextExpiry === Infinity ? undefined : nextExpiry - now);
    }
    return undefined;
  }

  async renew(id: string, fence: number, leaseMs: number): Promise<RenewResult> {
    const [result] = await this.renewAll([{ id, fence }], leaseMs);
    return result ?? "lost";
  }

  async renewAll(leases: readonly Lease[], leaseMs: number): Promise<RenewResult[]> {
    const until = Date.now() + leaseMs;
    return leases.map(({ id, fence }): RenewResult => {
      const g = this.#generations.get(id);
      if (!g || g.terminal) return "closed";
      if (g.fence !== fence || g.job !== "leased") return "lost";
      g.leaseUntil = until;
      return "renewed";
    });
  }

  async release(id: string, fence: number): Promise<void> {
    const g = this.#generations.get(id);
    if (!g || g.fence !== fence || g.job !== "leased") return;
    g.job = "queued";
    g.leaseUntil = 0;
    this.#wakeups.wake(JOBS);
  }

  async cancel(id: string): Promise<CancelResult> {
    const g = this.#generations.get(id);
    if (!g) return "notFound";
    if (g.terminal) return "alreadyFinished";
    this.#appendUnchecked(g, [{ type: "cancelled", attempt: g.fence }]);
    return "cancelled";
  }

  async changes(after: string | undefined, limit: number): Promise<ChangesPage> {
    const afterSeq = after === undefined ? 0 : Number(after);
    const oldest = this.#feed[0]?.seq ?? this.#feedSeq + 1;
    // A gap: records after `after` were dropped (the first kept is past the one after it).
    const gap = oldest > afterSeq + 1;
    const start = this.#feed.findIndex((r) => r.seq > afterSeq);
    const page = start < 0 ? [] : this.#feed.slice(start, start + limit);
    return { gap, changes: page.map((r) => ({ position: String(r.seq), id: r.id, type: r.type })) };
  }

  async waitForChanges(after: string | undefined, signal: AbortSignal): Promise<void> {
    const afterSeq = after === undefined ? 0 : Number(after);
    if (this.#closed || this.#feedSeq > afterSeq) return;
    await this.#wakeups.next(FEED, signal);
  }

  async generations(after: string | undefined, limit: number): Promise<GenerationsPage> {
    const afterSeq = after === undefined ? 0 : Number(after);
    const page = [...this.#generations.values()].filter((g) => g.seq > afterSeq).slice(0, limit);
    const last = page.at(-1);
    const more = last !== undefined && page.length === limit;
    return { ids: page.map((g) => g.id), ...(more ? { next: String(last.seq) } : {}) };
  }

  #record(id: string, type: EntryType): void {
    this.#feed.push({ seq: ++this.#feedSeq, id, type });
    if (this.#feed.length > this.#feedLimit) this.#feed.splice(0, this.#feed.length - this.#feedLimit);
    this.#wakeups.wake(FEED);
  }

  async setChatGeneration(chatId: string, generationId: string): Promise<void> {
    this.#chats.set(chatId, generationId);
  }

  async chatGeneration(chatId: string): Promise<string | undefined> {
    return this.#chats.get(chatId);
  }

  async ping(): Promise<void> {
    if (this.#closed) throw new Error("engine closed");
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#wakeups.wakeAll();
  }
}
