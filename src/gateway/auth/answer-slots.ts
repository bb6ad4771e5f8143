import { randomUUID } from "node:crypto";
import { LifelineError } from "../../core/errors.ts";
import { GENERATION_ID } from "../../core/generation-id.ts";
import type { KeyStore } from "../../engine/keys/port.ts";
import type { Engine } from "../../engine/port.ts";
import type { Caller } from "./caller.ts";

/** How long a reservation holds a slot while its generation is being created. */
const RESERVATION_MS = 60_000;
/** How long a generation's slot is held at most: a longer answer stops counting then. */
const ANSWER_MS = 24 * 60 * 60_000;

/**
 * Concurrent answers per API key (decision 035): a key may have at most `limit` answers that have
 * not ended. Slots live in the key store (one sorted set per key on Redis, taken by one script), so
 * every gateway counts the same ones; a slot is freed when a later start of the same key finds its
 * answer ended. A start first reserves a slot, then creates the generation and swaps the reservation
 * for it, so a refused start stores nothing.
 */
export class AnswerSlots {
  readonly #store: KeyStore;
  readonly #engine: Engine;
  readonly #limit: number;

  constructor(store: KeyStore, engine: Engine, limit: number) {
    this.#store = store;
    this.#engine = engine;
    this.#limit = limit;
  }

  /** Runs `create` in a slot of the caller's key; throws 429 `too_many_answers` when the key has none free. */
  async admit<T extends { readonly id: string }>(
    caller: Caller,
    create: () => Promise<T>,
    replay?: () => Promise<T | undefined>,
  ): Promise<T> {
    if (caller.kind !== "key" || this.#limit <= 0) return create();
    const keyId = caller.holder.keyId;
    await this.#freeEnded(keyId);
    const reservation = `reserved:${randomUUID()}`;
    const now = Date.now();
    if (!(await this.#store.takeSlot(keyId, reservation, now + RESERVATION_MS, this.#limit, now))) {
      // A retry of a start that already has its answer (the same idempotency key) starts nothing:
      // it is answered with that answer, which holds its slot already.
      const replayed = await replay?.();
      if (replayed) return replayed;
      throw new LifelineError(
        "too_many_answers",
        `This key has ${this.#limit} answers running, as many as it may; start another when one ends.`,
      );
    }
    let swapped = false;
    try {
      const started = await create();
      // The generation takes the reservation's place in one step, whatever the count: the
      // reservation was admitted under the limit. Taken first and let go after, the two counted
      // twice for a moment, and eight starts at once against a limit of eight refused some.
      await this.#store.takeSlot(keyId, started.id, Date.now() + ANSWER_MS, Number.MAX_SAFE_INTEGER, Date.now(), reservation);
      swapped = true;
      return started;
    } finally {
      if (!swapped) await this.#store.releaseSlots(keyId, [reservation]);
    }
  }

  /** Frees the slots of the key's answers that have ended (or whose logs are gone). */
  async #freeEnded(keyId: string): Promise<void> {
    const held = (await this.#store.slots(keyId, Date.now())).filter((slot) => GENERATION_ID.test(slot));
    const heads = await Promise.all(held.map((id) => this.#engine.head(id)));
    const ended = held.filter((_, i) => heads[i] === undefined || heads[i]!.terminal);
    await this.#store.releaseSlots(keyId, ended);
  }
}
