import { afterEach } from "vitest";
import { startLifeline, type LifelineProcess } from "../../src/chaos/lifeline-process.ts";

export type StartLifeline = (command: "start" | "gateway" | "worker", env: Record<string, string>) => Promise<LifelineProcess>;

/**
 * Starts real `bin/lifeline` processes for the tests of a describe block; after each test, every one
 * still alive is SIGCONTed (a test may have paused it) and SIGKILLed.
 */
export function useLifelineProcesses(): StartLifeline {
  const processes: LifelineProcess[] = [];
  afterEach(async () => {
    for (const p of processes) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill("SIGCONT");
    await Promise.all(processes.splice(0).map((p) => p.kill()));
  });
  return async (command, env) => {
    const proc = await startLifeline(command, env);
    processes.push(proc);
    return proc;
  };
}
