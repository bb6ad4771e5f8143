import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const BIN = fileURLToPath(new URL("../../bin/lifeline", import.meta.url));

/** How a command ended, and what it wrote. */
export interface CliRun {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** The test runner's environment without its LIFELINE_*, and `env`: what a command of a test runs with. */
function userEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  return { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("LIFELINE_"))), ...env };
}

/** `bin/lifeline <args…>` to its end, as a user runs it: the environment carries no LIFELINE_* of the test runner, only `env`. */
export function runLifeline(args: readonly string[], env: Record<string, string> = {}): Promise<CliRun> {
  const child = spawn(process.execPath, [BIN, ...args], { env: userEnv(env), stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) => child.on("close", (status) => resolve({ status, stdout, stderr })));
}

/**
 * `lifeline <args…>` as {@link runLifeline} runs it, but inside the test's own process: `main` with
 * the same environment, what it writes to stdout and stderr caught, and the exit code it sets.
 * For commands that end at once without opening a port (a refusal, a usage error, a missing
 * generation): a process of their own costs about a second of CPU each to load Lifeline, and a
 * file of such cases held a core for half a minute. Each file still runs one case as a real
 * process, to show the code reaches the shell.
 */
export async function runLifelineHere(args: readonly string[], env: Record<string, string> = {}): Promise<CliRun> {
  const { main } = await import("../../src/cli/main.ts");
  const saved = { env: process.env, exitCode: process.exitCode, out: process.stdout.write, err: process.stderr.write };
  let stdout = "";
  let stderr = "";
  const catcher =
    (append: (text: string) => void) =>
    (chunk: string | Uint8Array, ...rest: unknown[]): boolean => {
      append(typeof chunk === "string" ? chunk : Buffer.from(chunk).toString());
      const done = rest.find((r): r is () => void => typeof r === "function");
      done?.();
      return true;
    };
  process.env = userEnv(env);
  process.exitCode = undefined;
  process.stdout.write = catcher((text) => (stdout += text)) as typeof process.stdout.write;
  process.stderr.write = catcher((text) => (stderr += text)) as typeof process.stderr.write;
  try {
    await main(args);
    return { status: typeof process.exitCode === "number" ? process.exitCode : Number(process.exitCode ?? 0), stdout, stderr };
  } finally {
    process.stdout.write = saved.out;
    process.stderr.write = saved.err;
    process.env = saved.env;
    process.exitCode = saved.exitCode;
  }
}
