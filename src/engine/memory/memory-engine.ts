import { createdEntry, idempotencyName } from "../created-entry.ts";
import { canonicalJson } from "../../core/canonical.ts";
import { stampEntry, type Entry, type EntryBody, type GenerationRequest } from "../../core/entries.ts";
import { decideAppend, endsWithTerminal } from "../append-rules.ts";
import { newGenerationId } from "../ids.ts";
import type { AppendResult, CancelResult, Claim, CreateOptions, CreateResult, Engine, Lease, LogHead, RenewResult } from "../port.ts";
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

/** Everything in the process's memory: for tests and for trying things out. Nothing survives. */
export class MemoryEngine implements Engine {
  readonly kind = "memory";
  readonly replicatesAsynchronously = false;
  readonly parallelClaims = 1;
  readonly #generations = new Map<string, Generation>();
  readonly #idempotency = new Map<string, { id: string; request: string }>();
  readonly #chats = new Map<string, string>();
  readonly #wakeups = new Wakeups();
  #seq = 0;
  #closed = false;

  async create(request: GenerationRequest, options: CreateOptions = {}): Promise<CreateResult> {
    const requestJson = canonicalJson(request);
    const key = idempotencyName(options);
    if (key !== undefined) {
      const seen = this.#idempotency.get(key);
      if (seen) return { kind: seen.request === requestJson ? "existing" : "idempotencyConflict", id: seen.id };
    }
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
    if (endsWithTerminal(entries)) {
      g.terminal = true;
      g.job = "done";
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
