import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fuzzApi } from "../support/fuzz/api-fuzzer.ts";
import { fuzzConfig } from "../support/fuzz/config-fuzzer.ts";
import { startFuzzTarget, type AnswerBytes } from "../support/fuzz/fuzz-target.ts";
import { fuzzWebSocket } from "../support/fuzz/ws-fuzzer.ts";
import { tempDir } from "../support/temp-dir.ts";

/**
 * A short, seeded run of the fuzzers (`npm run fuzz` runs the long one): generated requests to every
 * route, raw bytes, WebSocket frames and configurations. None may get a 5xx, an error outside the
 * registry, a hang or a crash, and the answers that stood before are byte-identical after.
 * A new seed each run widens what the suite covers over time; a failure prints the seed to replay.
 */
const SEED = Number(process.env.LIFELINE_FUZZ_SEED ?? Date.now() % 2 ** 31);

describe(`bad input never hurts (seed ${SEED})`, () => {
  let target: Awaited<ReturnType<typeof startFuzzTarget>>;
  let before: AnswerBytes;

  beforeAll(async () => {
    target = await startFuzzTarget();
    before = await target.snapshot();
  });
  afterAll(async () => {
    await target?.close();
  });

  it("generated HTTP requests and raw bytes get a 4xx or a success, never a 5xx, a hang or a crash", async () => {
    const report = await fuzzApi({ url: target.url, knownIds: target.knownIds, count: 3000, seed: SEED });
    expect(report.violations).toEqual([]);
    expect(report.cases).toBe(3000);
    console.log(`answers by status: ${JSON.stringify(report.statuses)}`);
    // The generator reaches the routes, not only the router's 404: answers started, read and refused.
    for (const status of ["200", "201", "400", "404"]) expect(report.statuses[status], status).toBeGreaterThan(0);
  });

  it("generated WebSocket frames get protocol frames and registered error codes, never a server error", async () => {
    const report = await fuzzWebSocket({ url: target.url, knownIds: target.knownIds, count: 200, seed: SEED });
    expect(report.violations).toEqual([]);
  });

  it("every answer that stood before the fuzzing is byte-identical after it", async () => {
    const after = await target.snapshot();
    expect([...after.keys()]).toEqual([...before.keys()]);
    for (const [key, bytes] of before) expect(after.get(key), key).toBe(bytes);
    const health = await fetch(`${target.url}/healthz`);
    expect(health.status).toBe(200);
  });

  it("generated configurations either load or fail with the one error that lists their problems", async () => {
    const dir = tempDir("lifeline-fuzz-config-");
    try {
      const report = await fuzzConfig({ count: 3000, seed: SEED, dir: dir.path });
      expect(report.violations).toEqual([]);
      expect(report.loaded).toBeGreaterThan(0);
    } finally {
      dir.remove();
    }
  });
});
