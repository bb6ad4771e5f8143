/** A signal that never aborts, for engine calls a test does not mean to cancel. */
export const never: AbortSignal = new AbortController().signal;

/** Resolves after `ms`. A pause in a scenario (an idle spell, a pacing gap), never a check. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Waits for `condition` to hold, looking every 20 ms. The deadline only bounds a test that would
 * otherwise hang; it is generous so that a loaded machine never trips it.
 */
export async function until(condition: () => boolean | Promise<boolean>, timeoutMs = 30_000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`${what} not met within ${timeoutMs} ms`);
    await sleep(20);
  }
}

/**
 * Waits for the next clock minute when less than `leftMs` of this one is left: for a test that
 * spends a per-minute budget, which a minute's end would fill again midway.
 */
export async function minuteWithTimeLeft(leftMs: number): Promise<void> {
  const left = 60_000 - (Date.now() % 60_000);
  if (left < leftMs) await sleep(left + 50);
}
