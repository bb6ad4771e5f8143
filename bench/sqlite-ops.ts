/**
 * What one operation of the sqlite engine costs on this machine, alone: the unit prices behind
 * the embedded benchmark. `node --import tsx bench/sqlite-ops.ts [--answers 100] [--ops 20000]`
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { Claim } from "../src/engine/port.ts";
import { SqliteEngine } from "../src/engine/sqlite/sqlite-engine.ts";
import { claimedAnswers } from "./support/claimed-answers.ts";

const { values: args } = parseArgs({ options: { answers: { type: "string", default: "100" }, ops: { type: "string", default: "20000" } } });
const answers = Number(args.answers);
const ops = Number(args.ops);

const dataDir = mkdtempSync(join(tmpdir(), "lifeline-sqlite-ops-"));
const engine = new SqliteEngine({ dataDir });
const claims = await claimedAnswers(engine, answers, "ops", 60_000);
const next = new Map(claims.map((c) => [c.id, 2]));

/** Microseconds per call, over `ops` calls spread round-robin across the answers. */
async function time(name: string, op: (claim: Claim) => Promise<unknown>): Promise<void> {
  const started = performance.now();
  for (let i = 0; i < ops; i++) await op(claims[i % claims.length] as Claim);
  console.log(`${name.padEnd(44)} ${(((performance.now() - started) / ops) * 1000).toFixed(1).padStart(7)} µs`);
}

console.log(`sqlite engine, ${answers} open answers, ${ops} calls each, data in ${tmpdir()}`);
await time("append one delta (one immediate transaction)", async (c) => {
  const offset = next.get(c.id) ?? 2;
  const result = await engine.append(c.id, c.fence, offset, [{ type: "delta", attempt: c.fence, text: " token" }]);
  if (result.kind !== "appended") throw new Error(`append: ${result.kind}`);
  next.set(c.id, offset + 1);
});
await time("read the newest entry (what an SSE stream does)", (c) => engine.read(c.id, (next.get(c.id) ?? 2) - 2, 256));
await time("read past the end (the empty read after it)", (c) => engine.read(c.id, (next.get(c.id) ?? 2) - 1, 256));
await time("head", (c) => engine.head(c.id));
await time("renew a lease", (c) => engine.renew(c.id, c.fence, 60_000));
await engine.close();
rmSync(dataDir, { recursive: true, force: true });
