import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";

const BIN = fileURLToPath(new URL("../../bin/lifeline", import.meta.url));

/** `lifeline sim-llm` in its own process, as tests and benches run it. */
export interface SimLlmProcess {
  readonly url: string;
  readonly child: ChildProcess;
  /** SIGTERM, then waits for the exit. */
  stop(): Promise<void>;
}

/**
 * Starts `lifeline sim-llm --host 127.0.0.1 --port 0 ...args` and resolves once it says where it
 * listens; fails with what it printed if it exits first or says nothing within 45 s.
 */
export async function startSimLlmProcess(args: readonly string[]): Promise<SimLlmProcess> {
  const child = spawn(process.execPath, [BIN, "sim-llm", "--host", "127.0.0.1", "--port", "0", ...args], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let err = "";
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`sim-llm did not start:\n${err}`)), 45_000);
    child.stderr.on("data", (chunk: Buffer) => {
      err += chunk.toString();
      const match = /sim-llm listening at (http:\/\/\S+)/.exec(err);
      if (match?.[1]) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`sim-llm exited with ${code}:\n${err}`));
    });
  });
  return {
    url,
    child,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, "exit");
      child.kill("SIGTERM");
      await exited;
    },
  };
}
