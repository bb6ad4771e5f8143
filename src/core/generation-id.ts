/**
 * A generation id as the engines issue them (`engine/ids.ts`): `gen_` and 26 characters, the time
 * (sortable) then 80 random bits, in Crockford base32. Anything else names no generation, so the
 * gateway and the tools refuse it without asking the engine.
 */
export const GENERATION_ID = /^gen_[0-9a-z]{26}$/;
