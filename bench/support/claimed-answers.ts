import type { Claim, Engine } from "../../src/engine/port.ts";

/** `count` answers created and claimed by one bench worker, for benches that append to the engine directly. */
export async function claimedAnswers(engine: Engine, count: number, label: string, leaseMs: number): Promise<Claim[]> {
  const never = new AbortController().signal;
  const claims: Claim[] = [];
  for (let i = 0; i < count; i++) {
    await engine.create({ model: "sim", messages: [{ role: "user", content: `${label} ${i}` }], max_tokens: 100_000 });
    const claim = await engine.claim("bench", leaseMs, never);
    if (!claim) throw new Error("no job to claim");
    claims.push(claim);
  }
  return claims;
}
