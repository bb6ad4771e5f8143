import { randomBytes } from "node:crypto";

const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";

/** `gen_` + 26 characters: the time (sortable) then 80 random bits, Crockford base32 (`core/generation-id.ts` checks the form). */
export function newGenerationId(now = Date.now()): string {
  let time = "";
  let t = now;
  for (let i = 0; i < 10; i++) {
    time = ALPHABET[t % 32] + time;
    t = Math.floor(t / 32);
  }
  const random = randomBytes(16);
  let rand = "";
  for (let i = 0; i < 16; i++) rand += ALPHABET[(random[i] ?? 0) % 32];
  return `gen_${time}${rand}`;
}
