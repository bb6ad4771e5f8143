import { randomFillSync } from "node:crypto";

const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";

/**
 * Random bytes drawn 4 KB at a time: a call into the system's generator per 256 ids, not per id
 * (Node's `randomUUID` pools its bytes too): a thousand starts at once spent a tenth of a stall drawing 16
 * bytes each. Each byte is used once.
 */
const pool = Buffer.alloc(4096);
let poolAt = pool.length;

/** `gen_` + 26 characters: the time (sortable) then 80 random bits, Crockford base32 (`core/generation-id.ts` checks the form). */
export function newGenerationId(now = Date.now()): string {
  let time = "";
  let t = now;
  for (let i = 0; i < 10; i++) {
    time = ALPHABET[t % 32] + time;
    t = Math.floor(t / 32);
  }
  if (poolAt + 16 > pool.length) {
    randomFillSync(pool);
    poolAt = 0;
  }
  let rand = "";
  for (let i = 0; i < 16; i++) rand += ALPHABET[pool[poolAt++]! % 32];
  return `gen_${time}${rand}`;
}
