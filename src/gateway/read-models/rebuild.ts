import type { Engine } from "../../engine/port.ts";
import type { ReadModelStore } from "../../projections/store/port.ts";
import { PROJECTOR_READER, Projector } from "./projector.ts";

/** What {@link rebuildReadModels} did. */
export interface RebuildOutcome {
  /** Logs folded into the emptied store. */
  readonly generations: number;
  /** The feed position recorded for the live projector: the one it had applied before the rebuild. */
  readonly position: string | undefined;
}

/**
 * Drops the read models and folds every log the engine holds into them again (decision 037). The
 * feed position the live projector had applied is taken before anything is dropped and recorded
 * again at the end: every change after it is applied again by the live projector (harmlessly, a
 * row only ever moves forward), and every change before it is in the logs the rebuild read. So a
 * projector that runs meanwhile, or starts after, continues without a gap.
 */
export async function rebuildReadModels(engine: Engine, store: ReadModelStore): Promise<RebuildOutcome> {
  const position = await store.position(PROJECTOR_READER);
  await store.clear();
  const projector = new Projector({ engine, store, stuckAfterMs: Number.MAX_SAFE_INTEGER });
  const generations = await projector.projectAll();
  await store.setPosition(PROJECTOR_READER, position);
  return { generations, position };
}
