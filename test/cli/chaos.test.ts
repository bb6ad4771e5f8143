import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";
import type { ChaosReport } from "../../src/chaos/run-chaos.ts";
import { runLifeline, type CliRun } from "../support/run-cli.ts";

/** `bin/lifeline chaos …` as a user runs it. */
const lifeline = (args: readonly string[], env: Record<string, string> = {}): Promise<CliRun> => runLifeline(["chaos", ...args], env);

describe("lifeline chaos", () => {
  it("kills workers and the gateway mid-answer, cuts client connections, and every answer ends exact", async () => {
    const run = await lifeline(["--answers", "12", "--workers", "2", "--kill-every-ms", "700", "--tokens", "100", "--seed", "7", "--json"]);
    expect(run.status, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout) as ChaosReport;
    expect(report, `${run.stderr}${run.stdout}`).toMatchObject({
      seed: 7,
      answers: 12,
      exact: 12,
      wrong: [],
      gatewayKills: 1,
      transports: { sse: 4, websocket: 4, "long-poll": 4 },
    });
    // Every kill was aimed at a worker the log showed mid-answer, and the log confirms it hit one
    // in flight: the killed worker's attempt was taken over, the gateway died before the answer ended.
    expect(report.workersKilled).toBeGreaterThanOrEqual(1);
    expect(report.faults).toHaveLength(report.workersKilled + report.gatewayKills);
    expect(report.faults.filter((f) => !f.inFlight)).toEqual([]);
    expect(report.faultsInFlight).toBe(report.faults.length);
    expect(new Set(report.faults.filter((f) => f.kind === "worker").map((f) => f.target)).size).toBe(report.workersKilled);
    expect(report.takeovers).toBeGreaterThanOrEqual(report.workersKilled);
    expect(run.stderr.match(/SIGKILLed chaos-worker-\d+ while it wrote gen_/g)).toHaveLength(report.workersKilled);
    expect(report.connectionsCut).toBeGreaterThan(0);
    expect(report.clientResumes).toBeGreaterThan(0);
    const dir = /on sqlite in (\S+);/.exec(run.stderr)?.[1];
    expect(dir).toBeDefined();
    expect(existsSync(dir!)).toBe(false); // removed without --keep
    expect(report.dataDir).toBeUndefined();
  }, 120_000);

  it("answers that cannot end by the deadline: exit 1 with a clear message, nothing left behind", async () => {
    const run = await lifeline([
      "--answers",
      "2",
      "--workers",
      "1",
      "--tokens",
      "4000",
      "--tokens-per-second",
      "1",
      "--deadline-s",
      "10",
      "--seed",
      "3",
    ]);
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/lifeline chaos: the answers did not all end within 10000 ms/);
    expect(run.stderr).not.toMatch(/at .*\.ts:\d+/); // a message, not a stack trace
    const dir = /on sqlite in (\S+);/.exec(run.stderr)?.[1];
    expect(dir).toBeDefined();
    expect(existsSync(dir!)).toBe(false);
  }, 60_000);

  it("a bad option is refused with every problem listed, exit 2, before anything starts", async () => {
    const run = await lifeline(["--answers", "0", "--transports", "sse,carrier-pigeon", "--kill-every-ms", "fast"]);
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/--answers must be a whole number from 1 to 500, not "0"/);
    expect(run.stderr).toMatch(/--transports: "carrier-pigeon" is not one of sse, websocket, long-poll/);
    expect(run.stderr).toMatch(/--kill-every-ms must be a whole number/);
    expect(run.stdout).toBe("");
    const unknown = await lifeline(["--bogus"]);
    expect([unknown.status, unknown.stderr]).toEqual([2, expect.stringMatching(/Unknown option '--bogus'/)]);
    const help = await lifeline(["--help"]);
    expect([help.status, help.stdout]).toEqual([0, expect.stringContaining("Usage: lifeline chaos")]);
  });
});
