import { setTimeout as sleep } from "node:timers/promises";
import type { Entry } from "../core/entries.ts";
import { timelineOf, type Timeline } from "../projections/timeline.ts";
import { routes } from "../core/routes.ts";

/**
 * Which worker is writing which answer at this moment, as the log tells it: the newest `started`
 * entry of an unfinished answer names the worker that holds it, and a `delta` after that entry
 * shows the worker is mid-stream (its model call is producing, not waiting to retry). A fault
 * aimed with this lands on an answer in flight, so a killed worker always leaves an answer for
 * another to take over: `lifeline chaos` and the failure tests aim their kills here.
 */
export interface AnswerInFlight {
  readonly id: string;
  /** The worker named by the newest `started` entry. */
  readonly worker: string;
  /** Its lease's fencing token (the attempt). */
  readonly fence: number;
  /** Deltas it wrote since that `started` entry: at least one. */
  readonly deltas: number;
  /** The answer's length so far. */
  readonly chars: number;
  readonly lastOffset: number;
}

/** The worker holding the answer mid-stream, from its timeline; undefined when none does. */
export function inFlightOf(timeline: Timeline): AnswerInFlight | undefined {
  const newest = timeline.attempts[timeline.attempts.length - 1];
  // `running` is only ever the last attempt of a log with no terminal entry.
  if (!newest || newest.endedBy !== "running" || newest.deltas === 0) return undefined;
  return {
    id: timeline.id,
    worker: newest.worker,
    fence: newest.fence,
    deltas: newest.deltas,
    chars: timeline.text.length,
    lastOffset: timeline.lastOffset,
  };
}

/** The same, from a log read by other means (an engine, an SSE replay): `entries` from offset 1. */
export function inFlightInLog(id: string, entries: readonly Entry[]): AnswerInFlight | undefined {
  return entries.length === 0 ? undefined : inFlightOf(timelineOf(id, entries));
}

/** `GET /v1/generations/:id/timeline`; undefined when the gateway cannot answer just now. */
export async function readTimeline(gateway: string, id: string): Promise<Timeline | undefined> {
  try {
    // No AbortSignal: Node 20's fetch leaves a listener on every signal it is given, and a run gives it thousands.
    const res = await fetch(`${gateway}${routes.timeline(id)}`);
    if (res.status !== 200) {
      await res.body?.cancel();
      return undefined;
    }
    return (await res.json()) as Timeline;
  } catch {
    return undefined; // a gateway that is down or restarting: look again on the next round
  }
}

/** An answer that may be aimed at, and how long it will be when finished, if that is known. */
export interface AimableAnswer {
  readonly id: string;
  readonly expectedChars?: number;
}

export interface AimOptions {
  /** The gateway the logs are read through. */
  readonly gateway: string | (() => string);
  /** The answers to look at; those that ended are skipped. */
  readonly answers: () => Iterable<AimableAnswer>;
  /** Whether a worker, by the name in its `started` entries, may be aimed at (for instance: it is a live process of ours). */
  readonly worker: (name: string) => boolean;
  /** Stops looking: the result is then undefined. */
  readonly signal?: AbortSignal;
  /**
   * An answer with a known length is aimed at only while at least this share of it is still to
   * come, so it does not end between the look and the fault. @defaultValue 0.25
   */
  readonly minShareLeft?: number;
  /** Pause between looks. @defaultValue 50 */
  readonly intervalMs?: number;
}

/**
 * Looks at the logs until an aimable worker holds an answer mid-stream, and returns the first
 * such answer it reads (the moment of the read is the moment that counts: a fault should follow
 * at once). Undefined once the signal aborts.
 */
export async function findAnswerInFlight(options: AimOptions): Promise<AnswerInFlight | undefined> {
  const { signal } = options;
  const minShareLeft = options.minShareLeft ?? 0.25;
  const ended = new Set<string>();
  while (!signal?.aborted) {
    const gateway = typeof options.gateway === "string" ? options.gateway : options.gateway();
    const candidates = [...options.answers()].filter((a) => !ended.has(a.id));
    const found = await firstFound(candidates, 4, async (answer) => {
      const timeline = await readTimeline(gateway, answer.id);
      if (!timeline) return undefined;
      if (timeline.durationMs !== undefined) ended.add(answer.id);
      const inFlight = inFlightOf(timeline);
      if (!inFlight || !options.worker(inFlight.worker)) return undefined;
      const { expectedChars } = answer;
      if (expectedChars !== undefined && expectedChars - inFlight.chars < minShareLeft * expectedChars) return undefined;
      return inFlight;
    });
    if (signal?.aborted) return undefined;
    if (found) return found;
    await sleep(options.intervalMs ?? 50, undefined, signal ? { signal } : {}).catch(() => undefined);
  }
  return undefined;
}

/** Runs `each` over `items`, `limit` at a time, until one gives a result; that result, as soon as it comes. */
function firstFound<T, R>(items: readonly T[], limit: number, each: (item: T) => Promise<R | undefined>): Promise<R | undefined> {
  let next = 0;
  let found: R | undefined;
  return new Promise<R | undefined>((resolve, reject) => {
    const lane = async (): Promise<void> => {
      while (found === undefined && next < items.length) {
        const result = await each(items[next++] as T);
        if (result !== undefined && found === undefined) resolve((found = result));
      }
    };
    Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane)).then(() => resolve(found), reject);
  });
}
