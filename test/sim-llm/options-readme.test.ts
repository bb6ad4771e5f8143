import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { SIM_LLM_OPTIONS } from "../../src/sim-llm/options.ts";
import { tableUnder, unquote } from "../support/markdown-table.ts";

/*
 * SIM_LLM_OPTIONS is the source (`lifeline sim-llm --help` prints it); the "Options" table of
 * src/sim-llm/README.md mirrors it. Every flag, environment variable and default must agree, both ways.
 */

const readme = readFileSync(new URL("../../src/sim-llm/README.md", import.meta.url), "utf8");
const rows = tableUnder(readme, "## Options").map(([flag = "", env = "", byDefault = ""]) => ({
  flag: unquote(flag),
  env: unquote(env),
  byDefault,
}));
const options = Object.values(SIM_LLM_OPTIONS).map((o) => ({ flag: `--${o.flag}`, env: o.env, default: o.default }));

describe("the options table of src/sim-llm/README.md and SIM_LLM_OPTIONS", () => {
  it("name the same options: each flag with its environment variable, both ways", () => {
    expect(rows.length).toBeGreaterThan(5); // the table was found and read
    const pair = (o: { flag: string; env: string }): string => `${o.flag} ${o.env}`;
    expect(rows.map(pair).sort()).toEqual(options.map(pair).sort());
  });

  it("give the same defaults (— for none)", () => {
    for (const option of options) {
      const row = rows.find((r) => r.flag === option.flag);
      const expected = option.default === "" ? "—" : `\`${option.default}\``;
      expect({ flag: option.flag, default: row?.byDefault }).toEqual({ flag: option.flag, default: expected });
    }
  });
});
