import { ProviderError } from "../provider-error.ts";
import type { ModelCall, ModelEvent, ModelProvider } from "../provider.ts";

/** Limits on one model call; every one is in milliseconds. */
export interface Timeouts {
  /** Until the provider accepts the call (its stream opens). @defaultValue 10000 */
  readonly connectMs: number;
  /** Until the first token. @defaultValue 30000 */
  readonly firstTokenMs: number;
  /** Between two events once tokens flow: a stalled stream is cut after this. @defaultValue 20000 */
  readonly idleMs: number;
  /** For the whole call. @defaultValue 600000 */
  readonly totalMs: number;
}

export const DEFAULT_TIMEOUTS: Timeouts = { connectMs: 10_000, firstTokenMs: 30_000, idleMs: 20_000, totalMs: 600_000 };

/**
 * Streams `call` from `provider` under `timeouts`. When one runs out, the upstream request is
 * aborted and the stream throws a retryable `ProviderError` of kind `timeout` naming which one.
 */
export async function* streamWithTimeouts(provider: ModelProvider, call: ModelCall, timeouts: Timeouts): AsyncIterable<ModelEvent> {
  const upstream = new AbortController();
  const forward = (): void => upstream.abort(call.signal.reason);
  if (call.signal.aborted) forward();
  call.signal.addEventListener("abort", forward, { once: true });
  let expired: { which: string; ms: number } | undefined;
  let phaseTimer: NodeJS.Timeout | undefined;
  const expire = (which: string, ms: number): void => {
    expired ??= { which, ms };
    upstream.abort(new ProviderError("timeout", `the ${which} timeout (${ms} ms) ran out`, { retryable: true, provider: provider.name }));
  };
  const arm = (which: string, ms: number): void => {
    clearTimeout(phaseTimer);
    phaseTimer = setTimeout(() => expire(which, ms), ms);
  };
  const total = setTimeout(() => expire("total", timeouts.totalMs), timeouts.totalMs);
  let opened = false;
  let tokens = 0;
  arm("connect", timeouts.connectMs);
  try {
    for await (const event of provider.stream({ ...call, signal: upstream.signal })) {
      if (event.type === "open") {
        opened = true;
        arm("first-token", timeouts.firstTokenMs);
        continue;
      }
      if (event.type === "token") {
        tokens += 1;
        if (!opened) opened = true;
        arm("idle", timeouts.idleMs);
      }
      // Waiting for the consumer is not the provider's time.
      clearTimeout(phaseTimer);
      yield event;
      arm(
        tokens > 0 ? "idle" : opened ? "first-token" : "connect",
        tokens > 0 ? timeouts.idleMs : opened ? timeouts.firstTokenMs : timeouts.connectMs,
      );
    }
  } catch (error) {
    if (expired && !call.signal.aborted) {
      throw new ProviderError("timeout", `the ${expired.which} timeout (${expired.ms} ms) ran out`, {
        retryable: true,
        provider: provider.name,
      });
    }
    throw error;
  } finally {
    clearTimeout(phaseTimer);
    clearTimeout(total);
    call.signal.removeEventListener("abort", forward);
    if (!upstream.signal.aborted) upstream.abort(new Error("stream closed"));
  }
}
