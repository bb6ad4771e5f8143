import { existsSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { GENERATION_ID } from "../core/generation-id.ts";
import { withArchive } from "../engine/archive/archived-engine.ts";
import { archiveConfigOf, openArchive } from "../engine/archive/open-archive.ts";
import type { Archive } from "../engine/archive/port.ts";
import { openEngine } from "../engine/open-engine.ts";
import { readLog } from "../engine/read-log.ts";
import type { Engine } from "../engine/port.ts";
import { parseEntryOffset } from "../core/cursor.ts";
import { timelineOf, type Timeline } from "../projections/timeline.ts";
import { ConfigError, FLAG_SPEC, loadConfig } from "./config.ts";
import { engineConfigOf } from "./engine-config.ts";

export const REPLAY_USAGE = `Usage: lifeline replay <generation-id> [--until <offset>] [--json | --entries] [engine options]

Reads a generation's log straight from the engine, or from the archive once the engine's
retention dropped it (no gateway needed), and replays it: which
attempts ran on which workers, what failed, what was retried, taken over or rewound, and the
text. The engine and archive options are those of \`lifeline start\` (--engine, --data-dir,
--redis-url, --postgres-url, …, or their environment variables).

  --until <offset>   replay up to this entry: the answer as it stood then
  --json             the timeline as JSON (the same as GET /v1/generations/:id/timeline)
  --entries          the raw entries, one JSON object per line`;

/** Thrown for a mistake in the command line: the caller prints it with the usage and exits 2. */
export class ReplayUsageError extends Error {}

/**
 * `lifeline replay`: prints a generation's timeline from its log. Returns the exit code: 0, or 1
 * when there is no such generation or the engine cannot be read.
 */
export async function replay(args: readonly string[], out: (text: string) => void, err: (text: string) => void): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      options: { ...FLAG_SPEC, until: { type: "string" }, json: { type: "boolean" }, entries: { type: "boolean" } },
      strict: true,
      allowPositionals: true,
    });
  } catch (error) {
    throw new ReplayUsageError((error as Error).message);
  }
  const { until: untilText, json, entries: raw, ...flags } = parsed.values;
  const [id, ...extra] = parsed.positionals;
  if (id === undefined) throw new ReplayUsageError("give the id of the generation to replay");
  if (extra.length > 0) throw new ReplayUsageError(`one generation at a time (got ${parsed.positionals.length})`);
  if (!GENERATION_ID.test(id)) throw new ReplayUsageError(`"${id.slice(0, 64)}" is not a generation id (gen_…)`);
  if (json && raw) throw new ReplayUsageError("--json and --entries exclude each other");
  const until = untilText === undefined ? undefined : parseEntryOffset(untilText);
  if (untilText !== undefined && until === undefined)
    throw new ReplayUsageError(`--until must be an entry offset (1, 2, …), not "${untilText.slice(0, 32)}"`);
  let config;
  try {
    config = loadConfig(process.env, flags as Record<string, string | undefined>);
  } catch (error) {
    if (error instanceof ConfigError) throw new ReplayUsageError(error.message);
    throw error;
  }
  if (config.engine === "memory") throw new ReplayUsageError("the memory engine lives in one process; replay reads sqlite or redis");
  if (config.engine === "sqlite" && !existsSync(join(config.dataDir, "lifeline.db"))) {
    err(`lifeline: no Lifeline data in ${config.dataDir} (set --data-dir or LIFELINE_DATA_DIR)\n`);
    return 1;
  }

  const base = engineConfigOf(config);
  let engine: Engine;
  try {
    engine = await openEngine(base.kind === "sqlite" ? { ...base, readOnly: true } : base);
  } catch (error) {
    err(`lifeline: cannot open the ${config.engine} engine: ${(error as Error).message}\n`);
    return 1;
  }
  let archive: Archive | undefined;
  try {
    archive = await openArchive(archiveConfigOf(config), { budgetMs: READ_DEADLINE_MS });
  } catch (error) {
    await engine.close();
    err(`lifeline: cannot open the archive: ${(error as Error).message}\n`);
    return 1;
  }
  try {
    const entries = await withDeadline(
      readLog(archive ? withArchive(engine, archive) : engine, id, until),
      READ_DEADLINE_MS,
      `the ${config.engine} engine did not answer within ${READ_DEADLINE_MS / 1000} s (is it running, and is the address right?)`,
    );
    if (entries.length === 0) {
      err(`lifeline: no generation ${id} in the ${config.engine} engine${archive ? ` nor the ${archive.kind} archive` : ""}\n`);
      return 1;
    }
    if (raw) {
      for (const entry of entries) out(`${JSON.stringify(entry)}\n`);
      return 0;
    }
    const timeline = timelineOf(id, entries);
    out(json ? `${JSON.stringify(timeline, null, 2)}\n` : renderTimeline(timeline));
    return 0;
  } catch (error) {
    err(`lifeline: cannot read the log of ${id}: ${(error as Error).message}\n`);
    return 1;
  } finally {
    await Promise.all([engine.close(), archive?.close()]);
  }
}

/** How long replay waits for the engine before it says it cannot reach it (ioredis would retry for much longer). */
const READ_DEADLINE_MS = 10_000;

function withDeadline<T>(work: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

/** The timeline for a terminal: a header, the attempts, the condensed log, the text. */
export function renderTimeline(t: Timeline): string {
  const lines: string[] = [];
  const duration = t.durationMs === undefined ? "still open" : `${(t.durationMs / 1000).toFixed(3)} s`;
  lines.push(`${t.id}  ${t.status}  model ${t.requestedModel}  ${t.lastOffset} entries  ${duration}`);
  lines.push(`created ${t.createdAt}, last entry ${t.updatedAt}`);
  lines.push(
    `${t.attempts.length} ${t.attempts.length === 1 ? "call" : "calls"}, ${t.retries} retried, ${t.takeovers} taken over, ${t.rewinds} rewound`,
  );
  if (t.error) lines.push(`error ${t.error.code}: ${t.error.message}`);
  lines.push("", "calls:");
  for (const a of t.attempts) {
    const first = a.firstDeltaMs === undefined ? "no text" : `first text after ${a.firstDeltaMs} ms`;
    const end = a.error ? `${a.endedBy} (${a.error.code})` : a.endedBy;
    lines.push(
      `  #${a.index}  fence ${a.fence}  ${a.model} on ${a.worker}  from ${a.continuedFrom} chars  ${first}  ${a.deltas} deltas (+${a.chars} chars)  → ${end}`,
    );
  }
  lines.push("", "log:");
  const start = Date.parse(t.createdAt);
  const width = String(t.lastOffset).length;
  for (const s of t.steps) {
    const offsets =
      s.fromOffset === s.toOffset ? String(s.fromOffset).padStart(width * 2 + 1) : `${s.fromOffset}-${s.toOffset}`.padStart(width * 2 + 1);
    const since = `+${((Date.parse(s.at) - start) / 1000).toFixed(3)}s`.padStart(10);
    lines.push(`  ${offsets}  ${since}  fence ${String(s.fence).padEnd(3)} ${s.type.padEnd(9)}  ${s.summary}`);
  }
  lines.push("", `text (${t.text.length} chars):`, t.text, "");
  return lines.join("\n");
}
