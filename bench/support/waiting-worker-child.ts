/**
 * A worker-only Lifeline node for `bench/waiting-calls.ts`, run with `--expose-gc`: starts on the
 * configuration of its environment and, on each IPC `measure`, collects garbage and answers with
 * its memory.
 */
import { writeHeapSnapshot } from "node:v8";
import { loadConfig } from "../../src/cli/config.ts";
import { startNode } from "../../src/cli/node.ts";

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with --expose-gc");
const node = await startNode(loadConfig(process.env, {}), { gateway: false, worker: true });

process.on("message", (message: { type: string; snapshot?: string }) => {
  if (message.type === "measure") {
    for (let i = 0; i < 3; i++) gc();
    const { heapUsed, external, arrayBuffers, rss } = process.memoryUsage();
    if (message.snapshot !== undefined) writeHeapSnapshot(message.snapshot);
    process.send?.({ type: "memory", heapUsed, external, arrayBuffers, rss });
  } else if (message.type === "stop") {
    void node.stop().then(() => process.exit(0));
  }
});
process.send?.({ type: "ready" });
