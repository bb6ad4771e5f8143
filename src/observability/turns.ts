import { performance } from "node:perf_hooks";
import { setImmediate as nextImmediate } from "node:timers/promises";

/** How long work chained through promises may hold the event loop before it lets timers and I/O run. */
const SLICE_MS = 10;

/**
 * When the current slice began: the last time the loop came round to the yielders. It measures
 * wall time since then, not work: after a quiet spell the first to ask waits one turn, so under a
 * steady load the yielders share about one `setImmediate` per slice.
 */
let sliceStart = performance.now();
/** The next turn every yielder waits for: one for all, so the slice starts once per turn. */
let turn: Promise<void> | undefined;

/**
 * The next turn of the event loop when the current stretch of promise-chained work has run longer
 * than a slice; `undefined` (one clock read) when it has not. A stream whose data is already
 * buffered is read through promises that never wait for I/O; without a turn now and then, timers (a
 * lease renewal, a coalescing flush) and other sockets would wait until the buffer ran dry.
 *
 * Every yielder waits for the same turn, and the slice starts once per turn: a hundred streams with
 * data buffered share one slice per turn instead of each taking one of its own in the same turn
 * (decision 044). So a caller asks again right before its work, and waits for the next turn when
 * the streams resumed before it have spent the slice:
 *
 *     for (let turn = yieldIfLong(); turn; turn = yieldIfLong()) await turn;
 */
export function yieldIfLong(): Promise<void> | undefined {
  if (!sliceSpent()) return undefined;
  turn ??= nextImmediate().then(() => {
    turn = undefined;
    sliceStart = performance.now();
  });
  return turn;
}

/** Whether the current slice is spent, as {@link yieldIfLong} would find it, without asking for a turn. */
export function sliceSpent(): boolean {
  return performance.now() - sliceStart >= SLICE_MS;
}

/**
 * Waits, when the slice is spent, for a turn in which it is not: the loop above as one call, for
 * work done one item at a time where a promise per item costs nothing (a fold per log).
 */
export async function turnWhenLong(): Promise<void> {
  for (let turn = yieldIfLong(); turn; turn = yieldIfLong()) await turn;
}

/**
 * Runs `work` now when the slice is not spent, and otherwise in a later turn. For work that starts
 * a chain of promises (a request's hooks and handler) rather than continuing one: each waiting
 * piece runs in a callback of its own (`setImmediate`), so the promises it starts have run before
 * the next piece looks at the clock. A hundred pieces resumed by one promise would all look before
 * any of them had worked.
 *
 * The waiting pieces have a slice of their own in each turn, apart from the one the yielders share:
 * streams that resume with every turn and spend every slice do not keep requests waiting, and a
 * turn holds at most a slice of each (decision 061).
 */
export function runInSlice(work: () => void): void {
  if (!sliceSpent()) return work();
  void yieldIfLong(); // the yielders' next slice starts with the next turn
  wait(work);
}

/** When the waiting pieces' slice of this turn began. */
let waitingSince = 0;
/** Whether the callback that starts the waiting pieces' next slice is queued. */
let opening = false;

/** Queues `work` behind the callback that starts the next turn's slice of waiting pieces. */
function wait(work: () => void): void {
  if (!opening) {
    opening = true;
    setImmediate(() => {
      opening = false;
      waitingSince = performance.now();
    });
  }
  setImmediate(runWaiting, work);
}

/** A waiting piece's callback: it runs while this turn's slice of waiting pieces lasts, or waits for the next. */
function runWaiting(work: () => void): void {
  if (performance.now() - waitingSince >= SLICE_MS) return wait(work);
  work();
}
