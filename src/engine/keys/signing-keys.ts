import { randomBytes, randomInt } from "node:crypto";
import type { SigningKey } from "./port.ts";

const ID_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";

/** A new signing key: 8-character id, 32 random bytes. */
export function newSigningKey(now = new Date()): SigningKey {
  const id = Array.from({ length: 8 }, () => ID_ALPHABET[randomInt(ID_ALPHABET.length)]).join("");
  return { id, secret: randomBytes(32).toString("base64url"), createdAt: now.toISOString() };
}

/** Newest first (the one that signs), ties broken by id so every gateway picks the same. */
export function newestFirst(keys: SigningKey[]): SigningKey[] {
  return keys.sort((a, b) => (a.createdAt === b.createdAt ? b.id.localeCompare(a.id) : b.createdAt.localeCompare(a.createdAt)));
}
