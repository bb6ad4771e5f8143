import { allows, type Scope } from "../../core/api-keys.ts";
import { LifelineError } from "../../core/errors.ts";
import type { KeyHolder } from "../../engine/keys/key-ring.ts";

/**
 * Who is asking: anyone, in a deployment that has no keys (bound to a loopback address), or the
 * holder of a key, with its tenant and scopes.
 */
export type Caller =
  | { readonly kind: "open" }
  | { readonly kind: "key"; readonly holder: KeyHolder }
  /** A browser's read token: it opens one generation (follow, poll, state, cancel unless `readOnly`) and nothing else. */
  | { readonly kind: "token"; readonly generation: string; readonly tenant: string | undefined; readonly readOnly: boolean };

export const OPEN: Caller = { kind: "open" };

/** The tenant a new generation of this caller belongs to; none in an open deployment. */
export function tenantOf(caller: Caller): string | undefined {
  if (caller.kind === "key") return caller.holder.tenant;
  return caller.kind === "token" ? caller.tenant : undefined;
}

/** Throws `forbidden` unless the caller may do what `scope` names. */
export function requireScope(caller: Caller, scope: Scope): void {
  if (caller.kind === "token")
    throw new LifelineError("forbidden", "A read token opens one generation's state, events, poll and cancel, nothing else.");
  if (caller.kind === "key" && !allows(caller.holder.scopes, scope)) {
    throw new LifelineError("forbidden", `This key lacks the scope ${scope}.`);
  }
}

/**
 * Whether the caller may see a generation of `tenant` (its `created` entry's): anyone in an open
 * deployment, an `admin` key everywhere, another key only in its own tenant. A generation made
 * before the deployment had keys has no tenant: only `admin` sees it then.
 */
export function maySee(caller: Caller, tenant: string | undefined): boolean {
  if (caller.kind === "open") return true;
  if (caller.kind === "token") return tenant === caller.tenant;
  if (caller.holder.scopes.includes("admin")) return true;
  return tenant !== undefined && tenant === caller.holder.tenant;
}
