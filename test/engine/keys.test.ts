import { afterEach, describe, expect, it } from "vitest";
import { parseApiKey } from "../../src/core/api-keys.ts";
import { KeyRing } from "../../src/engine/keys/key-ring.ts";
import { newSigningKey } from "../../src/engine/keys/signing-keys.ts";
import { MemoryKeyStore } from "../../src/engine/keys/memory.ts";
import type { KeyStore } from "../../src/engine/keys/port.ts";
import { RedisKeyStore } from "../../src/engine/keys/redis.ts";
import { SqliteKeyStore } from "../../src/engine/keys/sqlite.ts";
import { requireRedis } from "../support/redis-harness.ts";
import { redisPerFile } from "../support/redis-per-file.ts";
import { tempDir } from "../support/temp-dir.ts";

/** One suite for every key store: what a gateway and `lifeline keys` rely on. */
function keyStoreConformance(
  name: string,
  open: () => { store: KeyStore; peer?: () => KeyStore; close(): Promise<void> },
  skip?: (ctx: { skip(note?: string): void }) => void,
  /** False for a store in one process's memory: there is no other process to see its keys. */
  shared = true,
): void {
  describe(`key store: ${name}`, () => {
    let harness: ReturnType<typeof open> | undefined;
    afterEach(async () => {
      await harness?.close();
      harness = undefined;
    });
    const start = (ctx: { skip(note?: string): void }) => {
      skip?.(ctx);
      harness = open();
      return harness;
    };

    it("a key made by the ring checks as its tenant and scopes, and the store holds only a hash of it", async (ctx) => {
      const { store } = start(ctx);
      const ring = new KeyRing(store);
      expect(await store.hasKeys()).toBe(false);
      const { key, stored } = await ring.create("acme", ["generations:create", "generations:read"]);
      expect(await store.hasKeys()).toBe(true);
      expect(await ring.check(key)).toEqual({
        kind: "valid",
        holder: { keyId: stored.id, tenant: "acme", scopes: ["generations:create", "generations:read"] },
      });
      const listed = JSON.stringify(await store.list());
      expect(listed).not.toContain(parseApiKey(key)!.secret);
      expect(listed).toContain(stored.secretHash);
    });

    it("a key with a changed secret, an unknown id or no shape at all is invalid", async (ctx) => {
      const ring = new KeyRing(start(ctx).store);
      const { key } = await ring.create("acme", ["admin"]);
      const flipped = key.slice(0, -1) + (key.endsWith("A") ? "B" : "A");
      expect((await ring.check(flipped)).kind).toBe("invalid");
      expect((await ring.check(key.replace(/^llk_[a-z0-9]{16}/, "llk_zzzzzzzzzzzzzzzz"))).kind).toBe("invalid");
      for (const junk of ["", "Bearer x", "llk_", key + "x", key.toUpperCase()]) expect((await ring.check(junk)).kind).toBe("invalid");
    });

    it("a revoked key is refused, stays listed, and revoking again says so", async (ctx) => {
      const { store } = start(ctx);
      const ring = new KeyRing(store);
      const first = await ring.create("acme", ["generations:read"]);
      const second = await ring.create("beta", ["admin"]);
      expect(await store.revoke(first.stored.id, "2026-11-30T00:00:00.000Z")).toBe("revoked");
      expect(await store.revoke(first.stored.id, "2026-11-30T00:00:01.000Z")).toBe("alreadyRevoked");
      expect(await store.revoke("nosuchkey0000000", "2026-11-30T00:00:00.000Z")).toBe("notFound");
      expect((await ring.check(first.key)).kind).toBe("revoked");
      expect((await ring.check(second.key)).kind).toBe("valid");
      const listed = await store.list();
      expect(listed.map((k) => [k.id, k.tenant, k.revokedAt])).toEqual(
        expect.arrayContaining([
          [first.stored.id, "acme", "2026-11-30T00:00:00.000Z"],
          [second.stored.id, "beta", undefined],
        ]),
      );
      // Every key revoked: the deployment stays closed, it does not reopen by itself.
      expect(await store.revoke(second.stored.id, "2026-11-30T00:00:02.000Z")).toBe("revoked");
      expect(await store.hasKeys()).toBe(true);
    });

    it("holds signing keys newest first, and removes one by id", async (ctx) => {
      const { store } = start(ctx);
      expect(await store.signingKeys()).toEqual([]);
      const older = newSigningKey(new Date("2026-11-30T00:00:00.000Z"));
      const newer = newSigningKey(new Date("2026-11-30T00:00:01.000Z"));
      await store.addSigningKey(older);
      await store.addSigningKey(newer);
      expect(await store.signingKeys()).toEqual([newer, older]);
      expect(await store.removeSigningKey(older.id)).toBe(true);
      expect(await store.removeSigningKey(older.id)).toBe(false);
      expect(await store.signingKeys()).toEqual([newer]);
    });

    it("takes answer slots up to a limit, atomically per key, frees them on release or expiry", async (ctx) => {
      const { store } = start(ctx);
      // Real times: Redis also expires the whole set at its latest slot's expiry.
      const now = Date.now();
      expect(await store.takeSlot("k1", "a", now + 100_000, 2, now)).toBe(true);
      expect(await store.takeSlot("k1", "b", now + 100_000, 2, now)).toBe(true);
      expect(await store.takeSlot("k1", "c", now + 100_000, 2, now)).toBe(false);
      expect(await store.takeSlot("k1", "a", now + 500_000, 2, now)).toBe(true); // held already: extended
      expect(await store.takeSlot("k2", "c", now + 100_000, 2, now)).toBe(true); // another key counts apart
      expect((await store.slots("k1", now)).sort()).toEqual(["a", "b"]);
      await store.releaseSlots("k1", ["b"]);
      expect(await store.takeSlot("k1", "c", now + 100_000, 2, now)).toBe(true);
      // Past their expiry, b and c no longer count; a (extended) still does.
      expect(await store.slots("k1", now + 200_000)).toEqual(["a"]);
      expect(await store.takeSlot("k1", "d", now + 300_000, 2, now + 200_000)).toBe(true);
      expect(await store.takeSlot("k1", "e", now + 300_000, 2, now + 200_000)).toBe(false);
    });

    it("a slot taken in place of another lets that one go in the same step: the key never holds both", async (ctx) => {
      const { store } = start(ctx);
      const now = Date.now();
      expect(await store.takeSlot("k1", "reserved", now + 100_000, 2, now)).toBe(true);
      expect(await store.takeSlot("k1", "b", now + 100_000, 2, now)).toBe(true);
      // At the limit, the generation takes its reservation's place.
      expect(await store.takeSlot("k1", "generation", now + 100_000, 2, now, "reserved")).toBe(true);
      expect((await store.slots("k1", now)).sort()).toEqual(["b", "generation"]);
      expect(await store.takeSlot("k1", "c", now + 100_000, 2, now)).toBe(false);
      // Replacing a slot not held takes nothing away, and the limit still holds.
      expect(await store.takeSlot("k1", "d", now + 100_000, 2, now, "gone")).toBe(false);
    });

    it("a slot extended while held outlives its first expiry, though no other slot is taken after", async (ctx) => {
      const { store } = start(ctx);
      // Real times: an open stream's slot is renewed this way, and Redis expires the whole set.
      const now = Date.now();
      expect(await store.takeSlot("k1", "a", now + 300, 2, now)).toBe(true);
      expect(await store.takeSlot("k1", "a", now + 100_000, 2, now)).toBe(true); // held already: extended
      await new Promise((resolve) => setTimeout(resolve, 600));
      expect(await store.slots("k1", Date.now())).toEqual(["a"]);
      expect(await store.takeSlot("k1", "b", now + 100_000, 2, Date.now())).toBe(true);
      expect(await store.takeSlot("k1", "c", now + 100_000, 2, Date.now())).toBe(false);
    });

    it("spends a key's tokens of one window up to a limit, all or nothing; another window starts again", async (ctx) => {
      const { store } = start(ctx);
      const window = Date.now() - (Date.now() % 60_000);
      expect(await store.spendTokens("k1", window, 60, 100)).toBe(true);
      expect(await store.spendTokens("k1", window, 50, 100)).toBe(false); // 110 > 100: nothing spent
      expect(await store.spendTokens("k1", window, 40, 100)).toBe(true); // exactly 100
      expect(await store.spendTokens("k1", window, 1, 100)).toBe(false);
      expect(await store.spendTokens("k2", window, 100, 100)).toBe(true); // another key
      expect(await store.spendTokens("k1", window + 60_000, 100, 100)).toBe(true); // the next minute
      expect(await store.spendTokens("k2", window, -30, 100)).toBe(true); // given back
      expect(await store.spendTokens("k2", window, 30, 100)).toBe(true);
      expect(await store.spendTokens("k2", window, 1, 100)).toBe(false);
      // Given back to a window past, once the next has begun: the next keeps what it spent.
      expect(await store.spendTokens("k1", window, -40, 100)).toBe(true);
      expect(await store.spendTokens("k1", window + 60_000, 1, 100)).toBe(false);
    });

    if (shared) {
      it("another process on the same store sees a key made and revoked here at once", async (ctx) => {
        const harness = start(ctx);
        if (!harness.peer) throw new Error("a shared store's harness must open a peer");
        const ring = new KeyRing(harness.store);
        const peer = harness.peer();
        try {
          const { key, stored } = await ring.create("acme", ["admin"]);
          expect((await new KeyRing(peer).check(key)).kind).toBe("valid");
          await harness.store.revoke(stored.id, new Date().toISOString());
          expect((await new KeyRing(peer).check(key)).kind).toBe("revoked");
        } finally {
          await peer.close();
        }
      });
    }
  });
}

keyStoreConformance(
  "memory",
  () => {
    const store = new MemoryKeyStore();
    return { store, close: () => store.close() };
  },
  undefined,
  false,
);

keyStoreConformance("sqlite", () => {
  const dir = tempDir();
  const store = new SqliteKeyStore({ dataDir: dir.path });
  return {
    store,
    peer: () => new SqliteKeyStore({ dataDir: dir.path }),
    close: async () => {
      await store.close();
      dir.remove();
    },
  };
});

let prefixes = 0;
const redis = redisPerFile();

keyStoreConformance(
  "redis standalone",
  () => {
    const prefix = `k${process.pid}x${prefixes++}`;
    const open = () => new RedisKeyStore({ target: { mode: "standalone", url: redis.server!.url }, prefix });
    const store = open();
    return { store, peer: open, close: () => store.close() };
  },
  (ctx) => requireRedis(ctx),
);

keyStoreConformance(
  "redis cluster",
  () => {
    const prefix = `k${process.pid}x${prefixes++}`;
    const open = () =>
      new RedisKeyStore({ target: { mode: "cluster", nodes: redis.cluster!.nodes.map((n) => ({ host: n.host, port: n.port })) }, prefix });
    const store = open();
    return { store, peer: open, close: () => store.close() };
  },
  (ctx) => requireRedis(ctx),
);
