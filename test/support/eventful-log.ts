import type { Engine } from "../../src/engine/port.ts";
import { never } from "./waits.ts";

/**
 * Writes through `engine`'s real fenced appends a log with everything a timeline must show: a call
 * that fails and is retried on a fallback model, a takeover by another worker with a higher fence,
 * a rewind, and the end. Returns the id and the text the log folds to.
 */
export async function writeEventfulLog(engine: Engine): Promise<{ id: string; text: string }> {
  const { id } = await engine.create({ model: "primary", messages: [{ role: "user", content: "tell me" }], max_tokens: 20 });
  const first = await engine.claim("worker-a", 60_000, never);
  if (first?.id !== id) throw new Error("the claim did not return the new generation");
  const f1 = first.fence;
  let next = 2;
  const append = async (fence: number, entries: Parameters<Engine["append"]>[3]): Promise<void> => {
    const result = await engine.append(id, fence, next, entries);
    if (result.kind !== "appended") throw new Error(`append at ${next} was ${result.kind}`);
    next += entries.length;
  };
  await append(f1, [{ type: "started", attempt: f1, worker: "worker-a", model: "primary" }]);
  await append(f1, [{ type: "delta", attempt: f1, text: "Hello" }]);
  await append(f1, [{ type: "delta", attempt: f1, text: " there" }]);
  await append(f1, [{ type: "retrying", attempt: f1, error: { code: "model_timeout", message: "no token for 2000 ms" }, delayMs: 250 }]);
  await append(f1, [{ type: "started", attempt: f1, worker: "worker-a", model: "fallback" }]);
  await append(f1, [{ type: "delta", attempt: f1, text: ", old" }]);
  // worker-a's lease ends without a word (here: handed back); worker-b takes over with a higher fence.
  await engine.release(id, f1);
  const second = await engine.claim("worker-b", 60_000, never);
  if (second?.id !== id) throw new Error("the takeover claim did not return the generation");
  const f2 = second.fence;
  await append(f2, [{ type: "started", attempt: f2, worker: "worker-b", model: "fallback" }]);
  await append(f2, [{ type: "rewind", attempt: f2, toOffset: 4 }]); // back to "Hello there"
  await append(f2, [{ type: "delta", attempt: f2, text: ", friend" }]);
  await append(f2, [{ type: "delta", attempt: f2, text: "." }]);
  await append(f2, [{ type: "completed", attempt: f2, finishReason: "stop", usage: { promptTokens: 3, completionTokens: 4 } }]);
  return { id, text: "Hello there, friend." };
}
