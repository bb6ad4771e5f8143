import type { Entry } from "../../src/core/entries.ts";
import { isTerminal } from "../../src/core/entries.ts";
import { TextFold } from "../../src/core/fold.ts";
import { RESET_EVENT, SseParser } from "../../src/core/wire.ts";

/** What a resilient client saw while following one answer. */
export interface FollowResult {
  readonly text: string;
  /** Offsets the application applied, in order; a reset is a 0, after which they start again at 1. */
  readonly applied: number[];
  readonly resets: number;
  readonly reconnects: number;
  readonly gatewaysUsed: Set<string>;
}

export interface FollowOptions {
  /** Gateways to use, in turn; a failed connection moves to the next one. */
  readonly gateways: readonly string[];
  /** Cut the connection on purpose after this many entries, then resume on the next gateway. */
  readonly switchAfter?: number;
  /** Give up after this long. */
  readonly deadlineMs?: number;
}

/**
 * Follows a generation like a careful client: resumes from its cursor with Last-Event-ID on
 * whichever gateway answers, drops entries it already applied, rebuilds on `reset`, and throws on
 * a gap (which would mean the server skipped an entry).
 */
export async function followAnswer(id: string, options: FollowOptions): Promise<FollowResult> {
  const fold = new TextFold();
  const applied: number[] = [];
  const gatewaysUsed = new Set<string>();
  let resets = 0;
  let reconnects = -1;
  let turn = 0;
  let switched = false;
  const deadline = Date.now() + (options.deadlineMs ?? 60_000);
  let done = false;
  let lastId = "";

  while (!done) {
    if (Date.now() > deadline) throw new Error(`gave up following ${id} at offset ${fold.lastOffset}`);
    reconnects += 1;
    const gateway = options.gateways[turn++ % options.gateways.length] ?? "";
    const ctl = new AbortController();
    try {
      const headers: Record<string, string> = { accept: "text/event-stream" };
      if (lastId !== "") headers["last-event-id"] = lastId; // opaque: whatever the server sent as id
      const res = await fetch(`${gateway}/v1/generations/${id}/events`, { headers, signal: ctl.signal });
      if (res.status === 204) {
        done = true;
        break;
      }
      if (res.status !== 200 || !res.body) {
        await res.body?.cancel();
        await new Promise((r) => setTimeout(r, 200));
        continue;
      }
      gatewaysUsed.add(gateway);
      const parser = new SseParser((message) => {
        if (message.id !== undefined) lastId = message.id;
        if (message.event === RESET_EVENT) {
          resets += 1;
          fold.reset();
          applied.push(0);
          return;
        }
        const entry = JSON.parse(message.data) as Entry;
        if (entry.offset <= fold.lastOffset) return; // already applied
        if (entry.offset !== fold.lastOffset + 1) throw new Error(`gap: ${fold.lastOffset} → ${entry.offset} in ${id}`);
        fold.apply(entry);
        applied.push(entry.offset);
        if (isTerminal(entry)) done = true;
        if (!switched && options.switchAfter !== undefined && applied.length >= options.switchAfter) {
          switched = true;
          ctl.abort();
        }
      });
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      for (;;) {
        const { done: ended, value } = await reader.read();
        if (ended) break;
        parser.push(decoder.decode(value, { stream: true }));
        if (done || ctl.signal.aborted) break;
      }
      await reader.cancel().catch(() => undefined);
    } catch (error) {
      if (error instanceof Error && error.message.startsWith("gap:")) throw error;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return { text: fold.text, applied, resets, reconnects, gatewaysUsed };
}

/** Each run of applied offsets between resets is 1, 2, 3 …: no gap and no repeat. */
export function segmentsAreContiguous(applied: readonly number[]): boolean {
  let expected = 1;
  for (const offset of applied) {
    if (offset === 0) expected = 1;
    else if (offset !== expected++) return false;
  }
  return true;
}
