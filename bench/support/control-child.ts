/**
 * The control process of `bench/peers.ts --control <busy-ms>:<rest-ms>`, started with the
 * event-loop probe like every measured process: it keeps a CPU busy `busy-ms` at a time, then lets
 * its event loop rest `rest-ms` (a timer; 0: the next turn, as a saturated process does), and makes
 * no garbage in between. No turn of its own is longer than `busy-ms`, so whatever its probe sees
 * past that is time the machine did not give it a CPU: the share of a Lifeline process's delays
 * that is the machine's, measured beside it under the same load.
 */
import { performance } from "node:perf_hooks";

const match = /^(\d+):(\d+)$/.exec(process.env.CONTROL_TURNS ?? "");
if (!match) throw new Error("CONTROL_TURNS: <busy-ms>:<rest-ms>");
const busyMs = Number(match[1]);
const restMs = Number(match[2]);

function turn(): void {
  const until = performance.now() + busyMs;
  while (performance.now() < until); // busy, and allocating nothing
  if (restMs > 0) setTimeout(turn, restMs);
  else setImmediate(turn);
}

process.on("SIGTERM", () => process.exit(0));
turn();
