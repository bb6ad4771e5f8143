import { performance } from "node:perf_hooks";
import { setImmediate as nextTurn } from "node:timers/promises";

/** How long work chained through promises may hold the event loop before it lets timers and I/O run. */
const SLICE_MS = 10;

let sliceStart = performance.now();

/**
 * Lets the event loop turn when the current stretch of promise-chained work has run longer than
 * a slice. A stream whose data is already buffered is read through promises that never wait for
 * I/O; without a turn now and then, timers (a lease renewal, a coalescing flush) and other
 * sockets would wait until the buffer ran dry. Cheap when nothing is overdue: one clock read.
 */
export function yieldIfLong(): Promise<void> | undefined {
  if (performance.now() - sliceStart < SLICE_MS) return undefined;
  return nextTurn().then(() => {
    sliceStart = performance.now();
  });
}
