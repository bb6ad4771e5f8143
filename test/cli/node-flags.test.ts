import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { LIFELINE_NODE_FLAGS, startLifeline } from "../../src/chaos/lifeline-process.ts";

/*
 * Lifeline's Node flags (decision 048) are written where nothing can import them: `npm start`, the
 * README, the deployment guide. The launcher of the failure tests and benches holds them.
 */

const BIN = fileURLToPath(new URL("../../bin/lifeline", import.meta.url));
const flags = LIFELINE_NODE_FLAGS.join(" ");
const read = (path: string): string => readFileSync(new URL(`../../${path}`, import.meta.url), "utf8");

describe("Lifeline's Node flags", () => {
  it("are those of npm start, of the README and of the deployment guide; bin/lifeline's first line runs anywhere", () => {
    const pkg = JSON.parse(read("package.json")) as { scripts: { start: string } };
    expect(pkg.scripts.start).toBe(`node ${flags} bin/lifeline start`);
    expect(read("README.md")).toContain(`NODE_OPTIONS=${flags}`);
    expect(read("deploy/README.md")).toContain(`NODE_OPTIONS=${flags}`);
    // BusyBox's env (Alpine) has no -S: no flags on the first line.
    expect(read("bin/lifeline").split("\n")[0]).toBe("#!/usr/bin/env node");
  });

  it.skipIf(!existsSync("/proc/self/cmdline"))(
    "reach a process the launcher starts, before the flags its caller adds, and through NODE_OPTIONS one started by bin/lifeline",
    async () => {
      // A bench's own flag comes after Lifeline's: of a V8 flag given twice, the later holds.
      const launched = await startLifeline("start", { LIFELINE_ENGINE: "memory" }, ["--max-semi-space-size=64"]);
      try {
        const argv = readFileSync(`/proc/${launched.child.pid}/cmdline`, "utf8").split("\0");
        for (const flag of LIFELINE_NODE_FLAGS) expect(argv).toContain(flag);
        expect(argv.indexOf("--max-semi-space-size=64")).toBeGreaterThan(
          Math.max(...LIFELINE_NODE_FLAGS.map((flag) => argv.indexOf(flag))),
        );
      } finally {
        await launched.kill();
      }
      // Through NODE_OPTIONS, as the README tells whoever runs bin/lifeline itself: Node refuses at
      // start a flag NODE_OPTIONS may not carry, so a process that gets ready took it.
      const child = spawn(BIN, ["start"], {
        env: { ...process.env, NODE_OPTIONS: flags, LIFELINE_ENGINE: "memory", LIFELINE_HOST: "127.0.0.1", LIFELINE_PORT: "0" },
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
      } finally {
        child.kill("SIGKILL");
      }
    },
  );
});
