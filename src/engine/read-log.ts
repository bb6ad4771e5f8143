import type { Entry } from "../core/entries.ts";
import type { Engine } from "./port.ts";

const PAGE = 1000;

/** A log from offset 1, page by page, up to entry `until` (the whole log when absent); empty when there is no such log. */
export async function readLog(engine: Engine, id: string, until?: number): Promise<Entry[]> {
  const entries: Entry[] = [];
  for (;;) {
    const page = await engine.read(id, entries.length, PAGE);
    for (const entry of page) {
      if (until !== undefined && entry.offset > until) return entries;
      entries.push(entry);
    }
    if (page.length < PAGE) return entries;
  }
}
