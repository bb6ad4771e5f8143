import type { IncomingHttpHeaders } from "node:http";
import type { GenerationRequest } from "../core/entries.ts";
import { LifelineError } from "../core/errors.ts";
import type { GenerationStatus } from "../core/fold.ts";
import { HEADERS } from "../core/wire.ts";
import type { Engine } from "../engine/port.ts";
import type { AnswerSlots } from "./auth/answer-slots.ts";
import type { TokenBudget } from "./auth/token-budget.ts";
import { tenantOf, type Caller } from "./auth/caller.ts";
import { viewOf } from "./generation-view.ts";
import { traceCreate } from "./create-trace.ts";

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

/** The request's `Idempotency-Key`, validated; `undefined` when it has none. */
export function idempotencyKeyOf(headers: IncomingHttpHeaders): string | undefined {
  const key = headers[HEADERS.idempotencyKey];
  if (key !== undefined && (typeof key !== "string" || !IDEMPOTENCY_KEY.test(key))) {
    throw new LifelineError("invalid_header", "Idempotency-Key must be 1 to 255 visible ASCII characters.");
  }
  return key;
}

/** A generation a door started, or the one an `Idempotency-Key` seen before names. */
export interface Started {
  readonly id: string;
  /** True when the key named an existing generation with the same request. */
  readonly replayed: boolean;
  readonly status: GenerationStatus;
}

/**
 * Starts generations for every door (the native API and the protocol doors): checks that the model
 * is served, admits the start under the caller's key's concurrent answers, creates the log and its
 * job in the caller's tenant, and resolves an `Idempotency-Key` seen before to its generation.
 * Throws `unknown_model`, `too_many_answers` and `idempotency_key_reused`.
 */
export class GenerationStarter {
  readonly #engine: Engine;
  readonly #models: () => readonly string[];
  readonly #slots: AnswerSlots | undefined;
  readonly #budget: TokenBudget | undefined;

  constructor(engine: Engine, models: () => readonly string[], limits: { slots?: AnswerSlots; budget?: TokenBudget } = {}) {
    this.#engine = engine;
    this.#models = models;
    this.#slots = limits.slots;
    this.#budget = limits.budget;
  }

  /**
   * Starts `request` for `caller`. `traceparent` is the request's W3C header: with tracing on, the
   * create span joins the client's trace when it names one (a malformed one is ignored).
   */
  start(request: GenerationRequest, idempotencyKey: string | undefined, caller: Caller, traceparent?: unknown): Promise<Started> {
    return traceCreate(request.model, traceparent, (trace) => this.#start(request, idempotencyKey, caller, trace));
  }

  async #start(
    request: GenerationRequest,
    idempotencyKey: string | undefined,
    caller: Caller,
    traceparent: string | undefined,
  ): Promise<Started> {
    const models = this.#models();
    if (!models.includes(request.model)) {
      throw new LifelineError("unknown_model", `No model named "${request.model}". Known: ${models.join(", ")}.`);
    }
    const create = () => this.#create(request, idempotencyKey, tenantOf(caller), traceparent);
    const replay = () => this.#replay(request, idempotencyKey, tenantOf(caller));
    let refund: (() => Promise<void>) | undefined;
    try {
      refund = await this.#budget?.spend(caller, request);
    } catch (error) {
      // A retry of a start that went through spends nothing: out of budget, it still gets its answer.
      const replayed = error instanceof LifelineError && error.code === "token_budget_spent" ? await replay() : undefined;
      if (replayed) return replayed;
      throw error;
    }
    let started: Started;
    try {
      started = await (this.#slots ? this.#slots.admit(caller, create, replay) : create());
    } catch (error) {
      await refund?.().catch(() => undefined);
      throw error;
    }
    if (started.replayed) await refund?.().catch(() => undefined);
    return started;
  }

  /** The answer a start with this idempotency key already has, if it has one; creates nothing. */
  async #replay(request: GenerationRequest, idempotencyKey: string | undefined, tenant: string | undefined): Promise<Started | undefined> {
    if (idempotencyKey === undefined) return undefined;
    const seen = await this.#engine.findCreated(request, { idempotencyKey, ...(tenant === undefined ? {} : { tenant }) });
    if (seen?.kind === "idempotencyConflict") throw new LifelineError("idempotency_key_reused");
    return seen && { id: seen.id, replayed: true, status: (await viewOf(this.#engine, seen.id))?.status ?? "queued" };
  }

  async #create(
    request: GenerationRequest,
    idempotencyKey: string | undefined,
    tenant: string | undefined,
    traceparent: string | undefined,
  ): Promise<Started> {
    const engine = this.#engine;
    const created = await engine.create(request, {
      ...(idempotencyKey === undefined ? {} : { idempotencyKey }),
      ...(tenant === undefined ? {} : { tenant }),
      ...(traceparent === undefined ? {} : { traceparent }),
    });
    if (created.kind === "idempotencyConflict") throw new LifelineError("idempotency_key_reused");
    if (created.kind === "created") return { id: created.id, replayed: false, status: "queued" };
    return { id: created.id, replayed: true, status: (await viewOf(engine, created.id))?.status ?? "queued" };
  }
}
