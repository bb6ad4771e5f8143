import type { KeyStore } from "../engine/keys/port.ts";
import { unavailableGuard } from "./guarded-engine.ts";

/**
 * The key store as the gateway uses it, like `guardEngine`: it shares the engine's store, and a
 * store that does not answer makes checking a key, taking an answer slot or spending tokens
 * `engine_unavailable` (503, retryable), not an internal error. Programming errors pass through.
 */
export function guardKeyStore(store: KeyStore): KeyStore {
  const guard = unavailableGuard(`The ${store.kind} key store`);
  return {
    kind: store.kind,
    add: guard((...a: Parameters<KeyStore["add"]>) => store.add(...a)),
    get: guard((...a: Parameters<KeyStore["get"]>) => store.get(...a)),
    list: guard(() => store.list()),
    revoke: guard((...a: Parameters<KeyStore["revoke"]>) => store.revoke(...a)),
    hasKeys: guard(() => store.hasKeys()),
    signingKeys: guard(() => store.signingKeys()),
    addSigningKey: guard((...a: Parameters<KeyStore["addSigningKey"]>) => store.addSigningKey(...a)),
    removeSigningKey: guard((...a: Parameters<KeyStore["removeSigningKey"]>) => store.removeSigningKey(...a)),
    takeSlot: guard((...a: Parameters<KeyStore["takeSlot"]>) => store.takeSlot(...a)),
    slots: guard((...a: Parameters<KeyStore["slots"]>) => store.slots(...a)),
    releaseSlots: guard((...a: Parameters<KeyStore["releaseSlots"]>) => store.releaseSlots(...a)),
    spendTokens: guard((...a: Parameters<KeyStore["spendTokens"]>) => store.spendTokens(...a)),
    close: () => store.close(),
  };
}
