import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { LIFELINE_NODE_FLAGS } from "../../src/chaos/lifeline-process.ts";

/*
 * Lifeline's Node flags (decision 048) are written in three places that cannot import one another:
 * bin/lifeline's first line, `npm start`, and the process launcher of the failure tests and benches.
 */

const BIN = fileURLToPath(new URL("../../bin/lifeline", import.meta.url));
const flags = LIFELINE_NODE_FLAGS.join(" ");

describe("Lifeline's Node flags", () => {
  it("are the same in bin/lifeline's first line, in npm start and in the process launcher", () => {
    const [shebang] = readFileSync(BIN, "utf8").split("\n");
    expect(shebang).toBe(`#!/usr/bin/env -S node ${flags}`);
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { scripts: { start: string } };
    expect(pkg.scripts.start).toBe(`node ${flags} bin/lifeline start`);
  });

  it.skipIf(!existsSync("/proc/self/cmdline"))("reach the process started through bin/lifeline's first line", async () => {
    const child = spawn(BIN, ["start"], {
      env: { ...process.env, LIFELINE_ENGINE: "memory", LIFELINE_HOST: "127.0.0.1", LIFELINE_PORT: "0", LIFELINE_LOG_LEVEL: "info" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    try {
      let out = "";
      await new Promise<void>((resolve, reject) => {
        const check = (chunk: Buffer): void => {
          out += chunk.toString();
          if (out.includes("Lifeline is ready at")) resolve();
        };
        child.stdout.on("data", check);
        child.stderr.on("data", check);
        child.once("exit", (code) => reject(new Error(`exited with ${code} before it was ready:\n${out}`)));
      });
      const argv = readFileSync(`/proc/${child.pid}/cmdline`, "utf8").split("\0");
      for (const flag of LIFELINE_NODE_FLAGS) expect(argv).toContain(flag);
      expect(argv).toContain(BIN);
    } finally {
      child.kill("SIGKILL");
    }
  });
});
