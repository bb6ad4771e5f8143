/**
 * Where a process spent its CPU: reads a `.cpuprofile` (V8's format, as `--cpu-prof` or the loop
 * probe writes it) and sums self time by package, by file and by function.
 *
 *   node --import tsx bench/support/profile-summary.ts <file.cpuprofile> [--top 15] [--stalls | --on-cpu]
 *
 * `--stalls` sums only the samples taken while the event loop was held over 100 ms, from the
 * windows the loop probe wrote beside the profile (`<file>.stalls.json`); `--on-cpu`, only those the
 * process spent on a CPU itself (`ON_CPU_STALL_MS`), not waiting for the machine to schedule it.
 *
 * A package is `node_modules/<name>` (scoped names kept whole), `lifeline src/<folder>` for the
 * product's own files, `bench` for the bench's, `node:internal/<area>` or `node:<module>` for Node's
 * own JavaScript, `(native or V8)` for native frames (socket writes, the JSON parser…), or V8's own
 * entries: `(garbage collector)`, `(program)`, `(idle)`.
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { ON_CPU_STALL_MS } from "./loop-probe.ts";
import { markdownTable, type Column } from "./report.ts";

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
}

export interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** One line of a summary: self time of everything grouped under `name`. */
export interface SelfTime {
  readonly name: string;
  readonly ms: number;
  /** Of the busy time: the whole profile but `(idle)`. */
  readonly share: number;
}

export interface ProfileSummary {
  readonly wallMs: number;
  readonly busyMs: number;
  readonly packages: readonly SelfTime[];
  readonly files: readonly SelfTime[];
  readonly functions: readonly SelfTime[];
}

/** The package a script URL belongs to. */
export function packageOf(url: string): string {
  if (url === "") return "(native or V8)";
  // Node's internals by area: web streams, fetch (undici), streams, http…
  if (url.startsWith("node:")) return /^node:internal\/(deps\/)?[^/]+(?=\/)/.exec(url)?.[0] ?? url;
  const modules = url.lastIndexOf("/node_modules/");
  if (modules !== -1) {
    const [first = "", second = ""] = url.slice(modules + "/node_modules/".length).split("/");
    return first.startsWith("@") ? `${first}/${second}` : first;
  }
  const src = /\/src\/([^/]+)\//.exec(url);
  if (src) return `lifeline src/${src[1]}`;
  if (url.includes("/bench/")) return "bench";
  return url;
}

function fileOf(url: string): string {
  const modules = url.lastIndexOf("/node_modules/");
  if (modules !== -1) return url.slice(modules + "/node_modules/".length);
  const src = url.lastIndexOf("/src/");
  if (src !== -1) return url.slice(src + 1);
  return url.replace(/^file:\/\//, "");
}

/**
 * A stretch of the profile's clock (µs, as `process.hrtime`), both ends included; the loop probe's
 * stalls also carry what the main thread ran on a CPU in them (ms, Linux).
 */
export type Window = readonly [startUs: number, endUs: number, onCpuMs?: number];

/** Self time per node id, from the samples and the time between them (µs); only samples within `windows` when given. */
function selfMicros(profile: CpuProfile, windows?: readonly Window[]): Map<number, number> {
  const self = new Map<number, number>();
  let at = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    at += profile.timeDeltas[i] ?? 0;
    if (windows !== undefined && !windows.some(([start, end]) => at >= start && at <= end)) continue;
    const id = profile.samples[i] as number;
    // The delta before the next sample is the time this one stood for.
    const delta = profile.timeDeltas[i + 1] ?? 0;
    self.set(id, (self.get(id) ?? 0) + Math.max(0, delta));
  }
  return self;
}

function ranked(totals: Map<string, number>, busyUs: number): SelfTime[] {
  return [...totals].map(([name, us]) => ({ name, ms: us / 1000, share: us / busyUs })).sort((a, b) => b.ms - a.ms);
}

/** Where the CPU went over the whole profile, or over `windows` only (the stalls `loop-probe.ts` recorded, say). */
export function summarizeProfile(profile: CpuProfile, windows?: readonly Window[]): ProfileSummary {
  const self = selfMicros(profile, windows);
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const packages = new Map<string, number>();
  const files = new Map<string, number>();
  const functions = new Map<string, number>();
  let idle = 0;
  let all = 0;
  for (const [id, us] of self) {
    const frame = byId.get(id)?.callFrame;
    if (frame === undefined) continue;
    all += us;
    const special = frame.url === "" && frame.functionName.startsWith("(") ? frame.functionName : undefined;
    if (special === "(idle)") {
      idle += us;
      continue;
    }
    const pkg = special ?? packageOf(frame.url);
    packages.set(pkg, (packages.get(pkg) ?? 0) + us);
    const file = special ?? fileOf(frame.url);
    files.set(file, (files.get(file) ?? 0) + us);
    const fn = special ?? `${frame.functionName || "(anonymous)"} ${file}:${frame.lineNumber + 1}`;
    functions.set(fn, (functions.get(fn) ?? 0) + us);
  }
  const busy = Math.max(1, all - idle);
  return {
    wallMs: (windows === undefined ? profile.endTime - profile.startTime : windows.reduce((sum, [a, b]) => sum + (b - a), 0)) / 1000,
    busyMs: busy / 1000,
    packages: ranked(packages, busy),
    files: ranked(files, busy),
    functions: ranked(functions, busy),
  };
}

const COLUMNS: readonly Column<SelfTime>[] = [
  { title: "self ms", cell: (r) => r.ms.toFixed(0) },
  { title: "share of busy", cell: (r) => `${(r.share * 100).toFixed(1)} %` },
  { title: "where", cell: (r) => `\`${r.name}\`` },
];

/** The summary as Markdown: the busy share, then the top packages, files and functions. */
export function formatProfileSummary(summary: ProfileSummary, top: number): string {
  return [
    `${summary.busyMs.toFixed(0)} ms busy of ${summary.wallMs.toFixed(0)} ms (${((summary.busyMs / summary.wallMs) * 100).toFixed(0)} %)`,
    "",
    "By package:",
    "",
    markdownTable(COLUMNS, summary.packages.slice(0, top)),
    "",
    "By file:",
    "",
    markdownTable(COLUMNS, summary.files.slice(0, top)),
    "",
    "By function:",
    "",
    markdownTable(COLUMNS, summary.functions.slice(0, top)),
  ].join("\n");
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values, positionals } = parseArgs({
    options: {
      top: { type: "string", default: "15" },
      stalls: { type: "boolean", default: false },
      "on-cpu": { type: "boolean", default: false },
    },
    allowPositionals: true,
  });
  const file = positionals[0];
  if (file === undefined) throw new Error("usage: profile-summary.ts <file.cpuprofile> [--top 15] [--stalls | --on-cpu]");
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  // --stalls: only the stretches where the event loop was held (`<file>.stalls.json`, written by `loop-probe.ts`).
  const stalls = values.stalls || values["on-cpu"];
  const recorded = stalls ? (JSON.parse(readFileSync(file.replace(/\.cpuprofile$/, ".stalls.json"), "utf8")) as Window[]) : undefined;
  if (values["on-cpu"] && recorded?.some((window) => window[2] !== undefined) === false)
    throw new Error("--on-cpu: the stalls beside this profile carry no time on a CPU (recorded without /proc/thread-self/schedstat)");
  const windows = values["on-cpu"] ? recorded?.filter(([, , onCpuMs]) => (onCpuMs ?? 0) > ON_CPU_STALL_MS) : recorded;
  if (windows !== undefined)
    console.log(
      `${windows.length} stalls: ${windows.map(([a, b, onCpu]) => `${((b - a) / 1000).toFixed(0)} ms${onCpu === undefined ? "" : ` (${onCpu.toFixed(0)} on CPU)`}`).join(", ")}\n`,
    );
  console.log(formatProfileSummary(summarizeProfile(profile, windows), Number(values.top)));
}
