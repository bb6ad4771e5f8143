/**
 * How long the event loop stops for the embedded engine's group commits under a steady stream of
 * appends, as a thousand answers make it: every `--tick-ms`, one delta for each of `--per-tick`
 * answers, for `--seconds`. Reports the loop's delay (p99, max, turns held over 20 and 50 ms) and
 * the write-ahead log's size at the end.
 *
 *   node --import tsx bench/sqlite-commits.ts [--answers 1000] [--per-tick 100] [--tick-ms 5] [--seconds 20] [--out FILE]
 */
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { SqliteEngine } from "../src/engine/sqlite/sqlite-engine.ts";
import { claimedAnswers } from "./support/claimed-answers.ts";

const { values: args } = parseArgs({
  options: {
    answers: { type: "string", default: "1000" },
    "per-tick": { type: "string", default: "100" },
    "tick-ms": { type: "string", default: "5" },
    seconds: { type: "string", default: "20" },
    out: { type: "string" },
  },
});
const answers = Number(args.answers);
const perTick = Number(args["per-tick"]);
const tickMs = Number(args["tick-ms"]);
const seconds = Number(args.seconds);

const dataDir = mkdtempSync(join(tmpdir(), "lifeline-sqlite-commits-"));
const engine = new SqliteEngine({ dataDir });
const claims = await claimedAnswers(engine, answers, "commits", 600_000);
const next = new Map(claims.map((c) => [c.id, 2]));
const text = " a token of forty bytes, more or less....";

const delay = monitorEventLoopDelay({ resolution: 1 });
let over20 = 0;
let over50 = 0;
let last = performance.now();
const probe = setInterval(() => {
  const now = performance.now();
  const late = now - last - 1;
  if (late > 20) over20++;
  if (late > 50) over50++;
  last = now;
}, 1);
delay.enable();
const started = performance.now();
let appended = 0;
let turn = 0;
await new Promise<void>((resolve, reject) => {
  const tick = setInterval(() => {
    if (performance.now() - started > seconds * 1000) {
      clearInterval(tick);
      resolve();
      return;
    }
    for (let i = 0; i < perTick; i++) {
      const claim = claims[(turn * perTick + i) % claims.length]!;
      const offset = next.get(claim.id)!;
      next.set(claim.id, offset + 1);
      engine.append(claim.id, claim.fence, offset, [{ type: "delta", attempt: claim.fence, text }]).then((result) => {
        if (result.kind !== "appended") reject(new Error(`append: ${result.kind}`));
        appended++;
      }, reject);
    }
    turn++;
  }, tickMs);
});
const wallS = (performance.now() - started) / 1000;
delay.disable();
clearInterval(probe);
const walBytes = statSync(join(dataDir, "lifeline.db-wal")).size;
await engine.close();
rmSync(dataDir, { recursive: true, force: true });
const result = {
  benchmark: "sqlite-commits",
  date: new Date().toISOString(),
  settings: { answers, perTick, tickMs, seconds },
  appendsPerSecond: appended / wallS,
  loopDelayMs: { p50: delay.percentile(50) / 1e6, p99: delay.percentile(99) / 1e6, max: delay.max / 1e6 },
  turnsLateOver20Ms: over20,
  turnsLateOver50Ms: over50,
  walBytesAtEnd: walBytes,
};
console.log(JSON.stringify(result));
if (args.out) writeFileSync(args.out, JSON.stringify(result, null, 2));
