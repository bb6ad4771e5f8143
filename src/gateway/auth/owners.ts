import { LifelineError } from "../../core/errors.ts";
import { GENERATION_ID } from "../../core/generation-id.ts";
import type { Engine } from "../../engine/port.ts";
import { maySee, type Caller } from "./caller.ts";

/** Tenants remembered; a generation's tenant never changes, so an entry is never stale. */
const REMEMBERED = 10_000;

/**
 * The tenant of each generation, read from its `created` entry (offset 1) once and remembered: every
 * route that names a generation asks here before it reads, follows or cancels it.
 */
export class Owners {
  readonly #engine: Engine;
  readonly #tenants = new Map<string, string | null>();

  constructor(engine: Engine) {
    this.#engine = engine;
  }

  /**
   * Resolves when `caller` may see generation `id`; throws `generation_not_found` when it does not
   * exist or belongs to another tenant (the same answer, so no one learns which ids exist elsewhere).
   * An open caller is never checked: the route's own read says whether the generation exists.
   */
  async check(caller: Caller, id: string): Promise<void> {
    if (caller.kind === "open") return;
    if (caller.kind === "token" && caller.generation !== id) throw new LifelineError("generation_not_found");
    if (!maySee(caller, await this.tenant(id))) throw new LifelineError("generation_not_found");
  }

  /** The tenant generation `id` belongs to (none when it was made in an open deployment); throws `generation_not_found`. */
  async tenant(id: string): Promise<string | undefined> {
    if (!GENERATION_ID.test(id)) throw new LifelineError("generation_not_found");
    let tenant = this.#tenants.get(id);
    if (tenant === undefined) {
      const [created] = await this.#engine.read(id, 0, 1);
      if (!created) throw new LifelineError("generation_not_found");
      tenant = created.type === "created" && created.tenant !== undefined ? created.tenant : null;
      if (this.#tenants.size >= REMEMBERED) this.#tenants.delete(this.#tenants.keys().next().value!);
      this.#tenants.set(id, tenant);
    }
    return tenant ?? undefined;
  }
}
