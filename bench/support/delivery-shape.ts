import type { AnswerTrace } from "./protocol.ts";
import type { EmitLog } from "./token-latency.ts";

/** How deliveries spread over a phase. */
export interface DeliveryShape {
  /**
   * Tokens per second while at least 90% of `peakStreaming` answers were streaming: the plateau
   * of the phase, ramp-up and drain left out. NaN when that lasted less than a second.
   */
  readonly sustainedTokensPerSecond: number;
  /** How long the plateau lasted (ms). */
  readonly sustainedWindowMs: number;
  /** The most answers that were streaming at one moment (between their first and last token). */
  readonly peakStreaming: number;
  /** Tokens received per whole second since the phase started, for a look at the ramp and the drain. */
  readonly perSecond: number[];
}

/**
 * Joins what clients received with what the model emitted, to count tokens per delivery, and
 * measures the rate at which tokens reached clients on the plateau of the phase. When the server
 * keeps up, that rate is what the model offered (answers × tokens per second each); when it falls
 * behind, it is what the server could deliver, and `peakStreaming` shows whether it ever ran every
 * answer at once. Times are the client fleet's clock.
 */
export function deliveryShape(traces: readonly AnswerTrace[], emits: EmitLog, phaseStartedAt: number): DeliveryShape {
  const deliveries: { at: number; tokens: number }[] = [];
  const spans: { at: number; change: number }[] = [];
  for (const trace of traces) {
    const ends = emits.get(trace.content)?.ends ?? [];
    const first = trace.received[0];
    const last = trace.received[trace.received.length - 2];
    if (first === undefined || last === undefined) continue;
    spans.push({ at: first, change: 1 }, { at: last, change: -1 });
    let counted = 0;
    for (let i = 0; i < trace.received.length; i += 2) {
      const end = trace.received[i + 1] ?? 0;
      let upTo = counted;
      while (upTo < ends.length && (ends[upTo] ?? Infinity) <= end) upTo++;
      if (upTo > counted) deliveries.push({ at: trace.received[i] ?? Number.NaN, tokens: upTo - counted });
      counted = upTo;
    }
  }
  const perSecond: number[] = [];
  for (const { at, tokens } of deliveries) {
    const second = Math.max(0, Math.floor((at - phaseStartedAt) / 1000));
    while (perSecond.length <= second) perSecond.push(0);
    perSecond[second] = (perSecond[second] ?? 0) + tokens;
  }
  // Ends sort before starts at the same moment, so a handover is not counted as two at once.
  spans.sort((a, b) => a.at - b.at || a.change - b.change);
  let streaming = 0;
  let peakStreaming = 0;
  for (const { change } of spans) peakStreaming = Math.max(peakStreaming, (streaming += change));
  // The plateau: every stretch during which at least 90% of the peak were streaming.
  const plateau: [number, number][] = [];
  const threshold = Math.ceil(peakStreaming * 0.9);
  streaming = 0;
  for (const { at, change } of spans) {
    const was = streaming;
    streaming += change;
    if (was < threshold && streaming >= threshold) plateau.push([at, Infinity]);
    else if (was >= threshold && streaming < threshold) (plateau[plateau.length - 1] as [number, number])[1] = at;
  }
  const windowMs = plateau.reduce((ms, [from, to]) => ms + (to - from), 0);
  let tokens = 0;
  let stretch = 0;
  deliveries.sort((a, b) => a.at - b.at);
  for (const { at, tokens: n } of deliveries) {
    while (stretch < plateau.length && at > (plateau[stretch]?.[1] ?? Infinity)) stretch++;
    const [from = Infinity] = plateau[stretch] ?? [];
    if (at >= from) tokens += n;
  }
  return {
    sustainedTokensPerSecond: windowMs >= 1000 ? tokens / (windowMs / 1000) : Number.NaN,
    sustainedWindowMs: windowMs,
    peakStreaming,
    perSecond,
  };
}
