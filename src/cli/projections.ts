import { parseArgs } from "node:util";
import { withArchive } from "../engine/archive/archived-engine.ts";
import { archiveConfigOf, openArchive } from "../engine/archive/open-archive.ts";
import type { Archive } from "../engine/archive/port.ts";
import { openEngine } from "../engine/open-engine.ts";
import { openReadModelStore, readModelStoreKind } from "../gateway/read-models/open-store.ts";
import { rebuildReadModels } from "../gateway/read-models/rebuild.ts";
import { ConfigError, FLAG_SPEC, loadConfig } from "./config.ts";
import { engineConfigOf } from "./engine-config.ts";

export const PROJECTIONS_USAGE = `Usage: lifeline projections rebuild [--json] [options]

Drops the read models behind /ops (answer summaries, counts per model and per worker) and rebuilds
them from the logs alone: every generation the engine still holds, and those only the archive holds
once the engine's retention dropped them (docs/operations.md, docs/archive.md). The live
projectors of running gateways continue from the feed position they had applied, without a gap.
The options are those of \`lifeline start\` (--engine, --data-dir, --redis-url, --postgres-url,
--read-models, …, or their environment variables).`;

/** Thrown for a mistake in the command line: the caller prints it with the usage and exits 2. */
export class ProjectionsUsageError extends Error {}

/** `lifeline projections rebuild`. Returns the exit code. */
export async function projectionsCommand(
  args: readonly string[],
  out: (text: string) => void,
  err: (text: string) => void,
): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: [...args], options: { ...FLAG_SPEC, json: { type: "boolean" } }, strict: true, allowPositionals: true });
  } catch (error) {
    throw new ProjectionsUsageError((error as Error).message);
  }
  const { json, ...flags } = parsed.values;
  const [action, ...rest] = parsed.positionals;
  if (action !== "rebuild") throw new ProjectionsUsageError(`unknown action ${JSON.stringify(action ?? "")}`);
  if (rest.length > 0) throw new ProjectionsUsageError(`unexpected ${JSON.stringify(rest[0])}`);
  let config;
  try {
    config = loadConfig(process.env, flags as Record<string, string | undefined>);
  } catch (error) {
    if (error instanceof ConfigError) throw new ProjectionsUsageError(error.message);
    throw error;
  }
  if (config.engine === "memory" || readModelStoreKind(config) === "memory")
    throw new ProjectionsUsageError("the memory engine and memory read models live in one process: there is nothing here to rebuild");

  const engine = await openEngine(engineConfigOf(config));
  let store;
  try {
    store = await openReadModelStore(config, { budgetMs: config.engineRetryMs });
  } catch (error) {
    await engine.close();
    err(`lifeline: could not open the read models: ${(error as Error).message}\n`);
    return 1;
  }
  // The gateways project through the archive-backed engine: a rebuild reads the same logs.
  let archive: Archive | undefined;
  try {
    archive = await openArchive(archiveConfigOf(config), { budgetMs: config.engineRetryMs });
  } catch (error) {
    await Promise.all([engine.close(), store.close()]);
    err(`lifeline: could not open the archive: ${(error as Error).message}\n`);
    return 1;
  }
  try {
    const started = Date.now();
    const outcome = await rebuildReadModels(archive ? withArchive(engine, archive) : engine, store);
    const ms = Date.now() - started;
    if (json) out(`${JSON.stringify({ store: store.kind, ...outcome, ms })}\n`);
    else out(`rebuilt the ${store.kind} read models from ${outcome.generations} logs in ${ms} ms\n`);
    return 0;
  } catch (error) {
    err(`lifeline: the rebuild failed: ${(error as Error).message}\n`);
    return 1;
  } finally {
    await Promise.all([engine.close(), store.close(), archive?.close()]);
  }
}
