import { describe, expect, it } from "vitest";
import { runLifeline } from "../support/run-cli.ts";
import { tempDir } from "../support/temp-dir.ts";

describe("lifeline projections", () => {
  it("rebuilds the sqlite read models of a data dir and says how many logs it folded", async () => {
    const dir = tempDir();
    try {
      const run = await runLifeline(["projections", "rebuild", "--json", "--data-dir", dir.path]);
      expect(run.status, run.stderr).toBe(0);
      expect(JSON.parse(run.stdout)).toMatchObject({ store: "sqlite", generations: 0 });
    } finally {
      dir.remove();
    }
  });

  it.each([
    [["projections"]],
    [["projections", "drop"]],
    [["projections", "rebuild", "now"]],
    [["projections", "rebuild", "--engine", "memory"]],
  ])("refuses %j with exit 2 and the usage", async (args) => {
    const run = await runLifeline(args);
    expect(run.status, args.join(" ")).toBe(2);
    expect(run.stderr).toContain("Usage: lifeline projections rebuild");
  });

  it("--help prints the usage", async () => {
    const run = await runLifeline(["projections", "--help"]);
    expect(run.status).toBe(0);
    expect(run.stdout).toContain("Usage: lifeline projections rebuild");
  });
});
