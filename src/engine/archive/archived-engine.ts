import type { Entry } from "../../core/entries.ts";
import type { CancelResult, Engine, GenerationsPage, LogHead } from "../port.ts";
import type { Archive } from "./port.ts";

/**
 * The engine as readers see it once logs are archived: a generation the engine no longer holds
 * (its retention dropped the log) is read from the archive, so the native API, every door, the
 * timeline and `lifeline replay` serve an archived answer exactly as a live one, through the
 * same code. The engine is always asked first; the archive only when the engine has no such log,
 * so a live log is never read from a copy. Writes (create, append, claim, …) go to the engine
 * alone; `cancel` of an archived answer is `alreadyFinished`, as it was before it expired, and
 * `generations` lists the engine's generations and then the archived ones it no longer holds, so a
 * rebuild of the read models through this view sees every answer. The caller
 * owns the archive and closes it.
 *
 * A Proxy rather than a list of methods: every operation the port gains later passes through
 * to the engine unchanged.
 */
export function withArchive(engine: Engine, archive: Archive): Engine {
  const overrides: Partial<Engine> = {
    head: async (id: string): Promise<LogHead | undefined> => (await engine.head(id)) ?? (await archive.head(id)),
    read: async (id: string, afterOffset: number, limit: number): Promise<Entry[]> => {
      const entries = await engine.read(id, afterOffset, limit);
      // An empty page is the end of a live log or no log at all: only the second is the archive's.
      if (entries.length > 0 || (await engine.head(id)) !== undefined) return entries;
      return archive.read(id, afterOffset, limit);
    },
    generations: (after: string | undefined, limit: number): Promise<GenerationsPage> => generations(engine, archive, after, limit),
    cancel: async (id: string): Promise<CancelResult> => {
      const result = await engine.cancel(id);
      if (result === "notFound" && (await archive.head(id)) !== undefined) return "alreadyFinished";
      return result;
    },
  };
  return new Proxy(engine, {
    get(target, property) {
      if (Object.hasOwn(overrides, property)) return overrides[property as keyof Engine];
      // The engine itself as `this`: its private fields are not the proxy's.
      const value: unknown = Reflect.get(target, property);
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/** Where a page of {@link generations} goes on: in the engine's list (`e:<its cursor>`), or the archive's (`a:[<its cursor>]`). */
const ENGINE_PAGE = "e:";
const ARCHIVE_PAGE = "a:";

/**
 * The engine's generations, then the archive's that the engine no longer holds (each id once), as
 * one list with one opaque cursor.
 */
async function generations(engine: Engine, archive: Archive, after: string | undefined, limit: number): Promise<GenerationsPage> {
  if (after === undefined || after.startsWith(ENGINE_PAGE)) {
    const page = await engine.generations(after === undefined ? undefined : after.slice(ENGINE_PAGE.length), limit);
    return { ids: page.ids, next: page.next === undefined ? ARCHIVE_PAGE : ENGINE_PAGE + page.next };
  }
  if (!after.startsWith(ARCHIVE_PAGE)) throw new RangeError(`not a cursor of generations: ${after.slice(0, 40)}`);
  const cursor = after.slice(ARCHIVE_PAGE.length);
  const page = await archive.generations(cursor === "" ? undefined : cursor, limit);
  const held = await Promise.all(page.ids.map(async (id) => (await engine.head(id)) !== undefined));
  const ids = page.ids.filter((_, i) => !held[i]);
  return page.next === undefined ? { ids } : { ids, next: ARCHIVE_PAGE + page.next };
}
