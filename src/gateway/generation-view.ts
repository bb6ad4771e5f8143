import { foldGeneration, type GenerationView } from "../core/fold.ts";
import { GENERATION_ID } from "../core/generation-id.ts";
import type { Engine } from "../engine/port.ts";
import { readLog } from "../engine/read-log.ts";

/** The generation's state folded from its whole log; `undefined` when it does not exist. */
export async function viewOf(engine: Engine, id: string): Promise<GenerationView | undefined> {
  if (!GENERATION_ID.test(id)) return undefined;
  const entries = await readLog(engine, id);
  return entries.length === 0 ? undefined : foldGeneration(id, entries);
}
