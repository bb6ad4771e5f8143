/**
 * The long run of the bad-input fuzzers (`npm run fuzz`; the suite runs a short one): generated HTTP
 * requests and raw bytes to every route, WebSocket sessions and configurations, against a gateway
 * and worker on sqlite holding answers that ended before. Prints what it did and every violation;
 * exits 1 on any (a 5xx, an unregistered code, a hang, a crash, a changed answer).
 *
 *   npm run fuzz -- [--http 90000] [--ws 2000] [--config 10000] [--seed <n>]
 */
import { parseArgs } from "node:util";
import { fuzzApi } from "../test/support/fuzz/api-fuzzer.ts";
import { fuzzConfig } from "../test/support/fuzz/config-fuzzer.ts";
import { startFuzzTarget } from "../test/support/fuzz/fuzz-target.ts";
import { fuzzWebSocket } from "../test/support/fuzz/ws-fuzzer.ts";
import { tempDir } from "../test/support/temp-dir.ts";

const { values } = parseArgs({
  options: {
    http: { type: "string", default: "90000" },
    ws: { type: "string", default: "2000" },
    config: { type: "string", default: "10000" },
    seed: { type: "string", default: String(Date.now() % 2 ** 31) },
  },
});
const counts = { http: Number(values.http), ws: Number(values.ws), config: Number(values.config) };
const seed = Number(values.seed);
for (const [name, n] of Object.entries({ ...counts, seed })) {
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`--${name} must be a whole number, not ${JSON.stringify(n)}`);
}

const started = Date.now();
const log = (line: string): void => console.log(`[${((Date.now() - started) / 1000).toFixed(1)} s] ${line}`);
log(`seed ${seed}: ${counts.http} HTTP cases, ${counts.ws} WebSocket sessions, ${counts.config} configurations`);

const target = await startFuzzTarget();
const before = await target.snapshot();
const http = await fuzzApi({
  url: target.url,
  knownIds: target.knownIds,
  count: counts.http,
  seed,
  onProgress: (done) => done % 10_000 === 0 && log(`${done} HTTP cases`),
});
log(`HTTP: ${http.cases} cases, answers by status ${JSON.stringify(http.statuses)}, ${http.violations.length} violations`);
const ws = await fuzzWebSocket({ url: target.url, knownIds: target.knownIds, count: counts.ws, seed });
log(`WebSocket: ${ws.sessions} sessions, ${ws.violations.length} violations`);
const after = await target.snapshot();
const changed = [...before].filter(([key, bytes]) => after.get(key) !== bytes).map(([key]) => key);
log(`answers that stood before: ${before.size / 3}, changed parts: ${changed.length}`);
await target.close();

const dir = tempDir("lifeline-fuzz-config-");
const config = await fuzzConfig({ count: counts.config, seed, dir: dir.path });
dir.remove();
log(`configuration: ${config.cases} cases, ${config.loaded} loaded, ${config.violations.length} violations`);

const violations = [
  ...http.violations,
  ...ws.violations,
  ...config.violations,
  ...changed.map((key) => ({ case: key, problem: "changed by the fuzzing" })),
];
for (const v of violations.slice(0, 50)) console.log(`VIOLATION ${v.problem}\n  ${v.case}`);
log(`${http.cases + ws.sessions + config.cases} cases in all, ${violations.length} violations (seed ${seed})`);
process.exit(violations.length === 0 ? 0 : 1);
