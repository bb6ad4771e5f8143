import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import type { LoopReport } from "./loop-probe.ts";
import { processCpuMs } from "./redis-stats.ts";

/** The Node arguments that load tsx and the event-loop probe (`loop-probe.ts`) before a process's own code. */
export const PROBE_NODE_ARGS: readonly string[] = ["--import", "tsx", "--import", new URL("./loop-probe.ts", import.meta.url).href];

/** How long a process may take to answer a mark: it may be stalled, which is what is measured. */
const MARK_TIMEOUT_MS = 120_000;

/** A process of a phase whose CPU and event loop the bench measures. */
export interface MeasuredProcess {
  /** `producer`, `gateway`, `worker`, `node`, `redis-server`, `readers`, `model`. */
  readonly name: string;
  readonly pid: number;
  /** The probe's report file; none for redis-server. */
  readonly probeFile?: string;
}

/** The environment that turns the probe on for a process named `name` of a phase with files in `dir`. */
export function probeEnv(dir: string, name: string, profile?: string): { LOOP_PROBE_OUT: string; LOOP_PROBE_PROFILE?: string } {
  return { LOOP_PROBE_OUT: join(dir, `${name}.loop.json`), ...(profile === undefined ? {} : { LOOP_PROBE_PROFILE: profile }) };
}

function readReport(file: string): LoopReport | undefined {
  try {
    return existsSync(file) ? (JSON.parse(readFileSync(file, "utf8")) as LoopReport) : undefined;
  } catch {
    return undefined; // replaced while read
  }
}

async function waitForMark(process: MeasuredProcess, mark: number): Promise<LoopReport> {
  const file = process.probeFile as string;
  const until = Date.now() + MARK_TIMEOUT_MS;
  for (;;) {
    const report = readReport(file);
    if (report !== undefined && report.mark >= mark) return report;
    if (Date.now() > until) throw new Error(`${process.name} (pid ${process.pid}) did not write its event-loop report ${mark}`);
    await sleep(10);
  }
}

/** Resolves once the probe of every process has loaded (its SIGUSR2 handler is in place). */
export async function probesReady(processes: readonly MeasuredProcess[]): Promise<void> {
  await Promise.all(processes.filter((p) => p.probeFile !== undefined).map((p) => waitForMark(p, 0)));
}

/**
 * Ends the current window of every probe (SIGUSR2) and returns what each saw in it, by process
 * name. The first call of a phase starts the window that the second one reports.
 */
export async function markProbes(processes: readonly MeasuredProcess[]): Promise<Record<string, LoopReport>> {
  const probed = processes.filter((p) => p.probeFile !== undefined);
  const marks = probed.map((p) => (readReport(p.probeFile as string)?.mark ?? 0) + 1);
  for (const p of probed) process.kill(p.pid, "SIGUSR2");
  const reports = await Promise.all(probed.map((p, i) => waitForMark(p, marks[i] ?? 1)));
  return Object.fromEntries(probed.map((p, i) => [p.name, reports[i] as LoopReport]));
}

/** User + system CPU of every process so far, in ms, by name. */
export function cpuOf(processes: readonly MeasuredProcess[]): Record<string, number> {
  return Object.fromEntries(processes.map((p) => [p.name, processCpuMs(p.pid)]));
}

/** The path of a bench file, for `fork`. */
export function benchFile(name: string): string {
  return fileURLToPath(new URL(`./${name}`, import.meta.url));
}
