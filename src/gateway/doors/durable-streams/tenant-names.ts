import { tenantOf, type Caller } from "../../auth/caller.ts";

/**
 * Where a caller's stream `name` is stored: each tenant's streams apart (`#<tenant>/<name>`; `#`
 * is never in a name), so nothing crosses tenants. An open deployment's streams have no tenant.
 */
export function storeNameOf(caller: Caller, name: string): string {
  const tenant = tenantOf(caller);
  return tenant === undefined ? name : `#${tenant}/${name}`;
}
