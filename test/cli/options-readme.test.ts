import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { OPTION_TABLE } from "../../src/cli/config.ts";
import { tableUnder, unquote } from "../support/markdown-table.ts";

/*
 * The options table of src/cli/config.ts is the source (`lifeline help` prints it); the README's
 * "Configuration" table mirrors it. Every flag, environment variable and default must agree, both ways.
 */

const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
const rows = tableUnder(readme, "## Configuration").map(([flag = "", env = "", byDefault = ""]) => ({
  flag: unquote(flag),
  env: unquote(env),
  byDefault,
}));

describe("the README's configuration table and the options of src/cli/config.ts", () => {
  it("name the same options: each flag with its environment variable, both ways", () => {
    expect(rows.length).toBeGreaterThan(10); // the table was found and read
    const pair = (o: { flag: string; env: string }): string => `${o.flag} ${o.env}`;
    expect(rows.map(pair).sort()).toEqual(OPTION_TABLE.map(pair).sort());
    expect(new Set(rows.map((r) => r.flag)).size).toBe(rows.length);
  });

  it("give the same defaults", () => {
    for (const option of OPTION_TABLE) {
      const row = rows.find((r) => r.flag === option.flag);
      if (!row) continue; // reported by the test above
      if (option.default !== "") {
        // A default the program applies as written is printed as code.
        expect({ flag: option.flag, default: row.byDefault }).toEqual({ flag: option.flag, default: `\`${option.default}\`` });
      } else {
        // No default (—), or one computed at start that the option's own text states as "(default …)".
        const computed = /\(default ([^)]+)\)/.exec(option.doc)?.[1];
        expect({ flag: option.flag, default: row.byDefault }).toEqual({ flag: option.flag, default: computed ?? "—" });
      }
    }
  });
});
