/**
 * What the benches' orchestrator (the server process) and the client fleet (a child process, so
 * clients do not share the server's event loop) report about each answer; the messages themselves
 * are in `client-fleet.ts`.
 */

/** What one client saw of one answer. Times are the client fleet's wall clock in ms. */
export interface AnswerTrace {
  /** The user message of the request: the key that joins this trace to the model's emits. */
  readonly content: string;
  readonly seed: number;
  /** Before the first request of the answer (the POST in embedded mode, the GET in direct mode). */
  readonly startedAt: number;
  /** When the POST was answered (embedded mode); `startedAt` in direct mode, which has no POST. */
  readonly acceptedAt: number;
  /** When the SSE response headers arrived: tokens emitted earlier reach the client as catch-up. */
  readonly connectedAt: number;
  readonly endedAt: number;
  /** Flattened pairs: [receivedAt, textLengthAfter, receivedAt, textLengthAfter, …], one per delta. */
  readonly received: number[];
  readonly text: string;
  /** The terminal entry's type, if one arrived. */
  readonly terminal: string | undefined;
  /** A gap or repeat in offsets, a reset, a rewind, an HTTP error: anything that is not a clean answer. */
  readonly problem: string | undefined;
}

export interface LoadResult {
  readonly traces: AnswerTrace[];
  readonly wallMs: number;
  /** CPU the client fleet used during the phase (user + system). */
  readonly clientCpuMs: number;
}

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes on one machine. */
export function wallNow(): number {
  return performance.timeOrigin + performance.now();
}

/** The request every client sends: unique per answer through its content and seed. */
export function benchRequest(tag: string, index: number, maxTokens: number): { content: string; seed: number; maxTokens: number } {
  return { content: `${tag} answer ${index}`, seed: index, maxTokens };
}

/**
 * Another process's clock minus ours, from the round trip with the smallest delay (as NTP does):
 * `ask(seq)` sends probe `seq` and resolves with the other side's `wallNow()`, or undefined.
 */
export async function clockOffsetOf(
  ask: (seq: number) => Promise<number | undefined>,
  samples: number,
): Promise<{ offsetMs: number; roundTripMs: number }> {
  let best = { offsetMs: 0, roundTripMs: Infinity };
  for (let seq = 0; seq < samples; seq++) {
    const sent = wallNow();
    const now = await ask(seq);
    const back = wallNow();
    if (now !== undefined && back - sent < best.roundTripMs) best = { offsetMs: now - (sent + back) / 2, roundTripMs: back - sent };
  }
  return best;
}
