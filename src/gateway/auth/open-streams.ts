import { randomUUID } from "node:crypto";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { LifelineError } from "../../core/errors.ts";
import type { KeyStore } from "../../engine/keys/port.ts";
import type { Caller } from "./caller.ts";
import { accessOf } from "./route-access.ts";

/** How often a gateway renews the slots of its open streams; a slot lives three times as long. */
const RENEW_EVERY_MS = 10_000;
const SLOT_LIFE_MS = 3 * RENEW_EVERY_MS;

/** Whose open streams a caller's count against: its key, or its read token's generation; nobody when open. */
function holderOf(caller: Caller): string | undefined {
  if (caller.kind === "key") return `streams:key:${caller.holder.keyId}`;
  if (caller.kind === "token") return `streams:generation:${caller.generation}`;
  return undefined;
}

/**
 * Open streams per API key across gateways (decision 035): every read request that is still open
 * (an event stream of any door, a long-poll, a state read) and every WebSocket subscription holds a
 * slot in the key store until it closes. A gateway renews its slots every 10 s and a slot lives
 * 30 s, so the slots of a gateway that died free themselves. Over the limit: 429
 * `too_many_streams` (an error frame on the WebSocket).
 */
export class OpenStreams {
  readonly #store: KeyStore;
  readonly #limit: number;
  /** This gateway's slots: slot → the holder it counts against. */
  readonly #held = new Map<string, string>();
  readonly #renewal: NodeJS.Timeout;

  constructor(store: KeyStore, limit: number) {
    this.#store = store;
    this.#limit = limit;
    this.#renewal = setInterval(() => void this.#renew(), RENEW_EVERY_MS);
    this.#renewal.unref();
  }

  /** Takes a slot for one open stream of `caller`; the returned function frees it. Throws `too_many_streams`. */
  async open(caller: Caller): Promise<() => void> {
    const holder = holderOf(caller);
    if (holder === undefined || this.#limit <= 0) return () => undefined;
    const slot = randomUUID();
    const now = Date.now();
    if (!(await this.#store.takeSlot(holder, slot, now + SLOT_LIFE_MS, this.#limit, now))) {
      throw new LifelineError("too_many_streams", `This key holds ${this.#limit} open streams, as many as it may.`);
    }
    this.#held.set(slot, holder);
    let freed = false;
    return () => {
      if (freed) return;
      freed = true;
      this.#held.delete(slot);
      void this.#store.releaseSlots(holder, [slot]).catch(() => undefined); // it expires anyway
    };
  }

  close(): void {
    clearInterval(this.#renewal);
  }

  async #renew(): Promise<void> {
    const now = Date.now();
    // Held already, so the limit does not apply: a renewal only moves the expiry.
    await Promise.all(
      [...this.#held].map(([slot, holder]) =>
        this.#store.takeSlot(holder, slot, now + SLOT_LIFE_MS, Number.MAX_SAFE_INTEGER, now).catch(() => undefined),
      ),
    );
  }
}

/**
 * The doors' starts that answer with the answer itself (its stream, or the whole of it once it
 * ends): open reads while they last, the more so as an `Idempotency-Key` replay only follows.
 */
const ANSWERING_STARTS: ReadonlySet<string> = new Set(["POST /v1/chat/completions", "POST /v1/responses", "POST /v1/ai-sdk/chat"]);

/** Counts every open read request of the API (streams, long-polls, the doors' answering starts) against its caller's slots, until its response closes. */
export function installStreamLimits(app: FastifyInstance, streams: OpenStreams): void {
  app.addHook("preHandler", async (request: FastifyRequest, reply) => {
    const read = accessOf(request.method, request.routeOptions.url) === "generations:read";
    if (!read && !ANSWERING_STARTS.has(`${request.method} ${request.routeOptions.url}`)) return;
    if (request.routeOptions.url === "/v1/ws") return; // its subscriptions count one by one
    const free = await streams.open(request.caller);
    reply.raw.once("close", free);
  });
  app.addHook("onClose", async () => streams.close());
}
