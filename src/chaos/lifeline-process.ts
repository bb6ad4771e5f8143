import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

const BIN = fileURLToPath(new URL("../../bin/lifeline", import.meta.url));

/**
 * The Node flags Lifeline's long-running processes are started with: those of `npm start`, of this
 * launcher (the failure tests, `lifeline chaos`, the benches) and of the README's commands. A young
 * generation twice V8's default (32 MB semispaces) takes the garbage of a thousand streaming
 * answers in about half as many scavenges, each no longer (decision 048).
 */
export const LIFELINE_NODE_FLAGS: readonly string[] = ["--max-semi-space-size=32"];

/** A real `bin/lifeline` process, as a user starts it. */
export interface LifelineProcess {
  readonly url: string;
  readonly child: ChildProcess;
  /** Everything the process wrote so far. */
  output(): string;
  /** SIGKILL: no shutdown code runs. */
  kill(): Promise<void>;
  /** SIGTERM and wait for the exit code. */
  terminate(): Promise<number | null>;
}

/**
 * Starts `bin/lifeline <command>` with `env` on a free port and resolves once it prints where it
 * listens (or, for a worker, that it runs).
 */
export async function startLifeline(
  command: "start" | "gateway" | "worker",
  env: Record<string, string>,
  nodeFlags: readonly string[] = [],
): Promise<LifelineProcess> {
  // `nodeFlags` after Lifeline's own: of a V8 flag given twice, the later holds (NODE_OPTIONS would come first and lose).
  const child = spawn(process.execPath, [...LIFELINE_NODE_FLAGS, ...nodeFlags, BIN, command], {
    env: { ...process.env, LIFELINE_HOST: "127.0.0.1", LIFELINE_PORT: "0", LIFELINE_LOG_LEVEL: "warn", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout?.on("data", (chunk: Buffer) => (out += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (out += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));

  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL"); // not left running behind a caller that gave up on it
      reject(new Error(`lifeline ${command} did not start in time:\n${out}`));
    }, 30_000);
    const check = (): void => {
      const ready = /Lifeline is ready at (http:\/\/[^\s/]+)/.exec(out) ?? /Lifeline worker \S+ is running/.exec(out);
      if (ready) {
        clearTimeout(timer);
        resolve(ready[1] ?? "");
      }
    };
    child.stderr?.on("data", check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`lifeline ${command} exited with ${code} before it was ready:\n${out}`));
    });
  });

  return {
    url,
    child,
    output: () => out,
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
    terminate: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      return exited;
    },
  };
}
