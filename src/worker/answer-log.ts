import type { GenerationRequest } from "../core/entries.ts";
import { TextFold } from "../core/fold.ts";
import type { Engine } from "../engine/port.ts";
import { readLog } from "../engine/read-log.ts";

/** What a run finds in the log it claimed: where the answer stands. */
export interface AnswerLog {
  readonly request: GenerationRequest;
  /** The text so far, rewinds applied. */
  readonly text: string;
  readonly lastOffset: number;
  readonly terminal: boolean;
  /** The create span's trace context, when the gateway that created the log traced it (decision 040). */
  readonly traceparent: string | undefined;
}

/** Reads the log of `id` and folds it; throws when it has no `created` entry. */
export async function readAnswerLog(engine: Engine, id: string): Promise<AnswerLog> {
  const fold = new TextFold();
  let request: GenerationRequest | undefined;
  let traceparent: string | undefined;
  let terminal = false;
  for (const entry of await readLog(engine, id)) {
    fold.apply(entry);
    if (entry.type === "created") ({ request, traceparent } = entry);
    if (entry.type === "completed" || entry.type === "failed" || entry.type === "cancelled") terminal = true;
  }
  if (!request) throw new Error(`log of ${id} has no created entry`);
  return { request, text: fold.text, lastOffset: fold.lastOffset, terminal, traceparent };
}
