import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, platform, release, totalmem } from "node:os";
import { dirname, resolve } from "node:path";
import type { Percentiles } from "./token-latency.ts";

/** What both benches measure of every phase: one concurrency level served one way, in one trial. */
export interface MeasuredPhase {
  readonly trial: number;
  readonly concurrency: number;
  /** The worker's coalescing window (`LIFELINE_COALESCE_MS`); null for the servers without one. */
  readonly coalesceMs: number | null;
  readonly label: string;
  readonly answers: number;
  readonly tokens: number;
  readonly deltaFrames: number;
  readonly wallMs: number;
  /** Tokens received / (first request → last stream end). */
  readonly tokensPerSecond: number;
  readonly latencyMs: Percentiles;
  readonly catchUpTokens: number;
  readonly firstTokenMs: Percentiles;
  readonly firstEmitMs: Percentiles;
  readonly subscribeMs: Percentiles;
  readonly mismatches: number;
  readonly problems: number;
  /** Answers with a mismatch, a problem or both. */
  readonly wrong: number;
  readonly problemSamples: readonly string[];
  /** The bench process: the server under test and the sim (the same sim in every mode). */
  readonly serverCpuMs: number;
  readonly serverEventLoopUtilization: number;
  readonly clientCpuMs: number;
  /** The machine's 1-minute load average when the phase started: the neighbours' share of the CPUs. */
  readonly loadAverage: number;
  readonly clockOffsetMs: number;
  readonly clockRoundTripMs: number;
}

/** One measured phase of the embedded bench. */
export interface PhaseRecord extends MeasuredPhase {
  readonly mode: "direct" | "embedded";
  readonly serverCpuMsPer1kTokens: number;
  /** Ratios against the direct pipe measured at the same level, in the same trial, just before. */
  readonly vsDirect?: Comparison;
}

export interface Comparison {
  readonly tokensPerSecond: number;
  readonly latencyP50: number;
  readonly latencyP95: number;
  readonly latencyP99: number;
  readonly addedLatencyP50Ms: number;
  readonly addedLatencyP99Ms: number;
  readonly serverCpuPerToken: number;
}

export function compare(phase: Omit<PhaseRecord, "vsDirect">, direct: Omit<PhaseRecord, "vsDirect">): Comparison {
  return {
    tokensPerSecond: phase.tokensPerSecond / direct.tokensPerSecond,
    latencyP50: phase.latencyMs.p50 / direct.latencyMs.p50,
    latencyP95: phase.latencyMs.p95 / direct.latencyMs.p95,
    latencyP99: phase.latencyMs.p99 / direct.latencyMs.p99,
    addedLatencyP50Ms: phase.latencyMs.p50 - direct.latencyMs.p50,
    addedLatencyP99Ms: phase.latencyMs.p99 - direct.latencyMs.p99,
    serverCpuPerToken: phase.serverCpuMsPer1kTokens / direct.serverCpuMsPer1kTokens,
  };
}

/** One line of the results table: the median over the trials of one level and one server. */
export interface SummaryRow {
  readonly concurrency: number;
  readonly label: string;
  readonly mode: "direct" | "embedded";
  readonly coalesceMs: number | null;
  readonly trials: number;
  /** All trials together. */
  readonly answers: number;
  readonly mismatches: number;
  readonly problems: number;
  readonly wrong: number;
  readonly catchUpTokens: number;
  /** Medians over the trials from here on. */
  readonly tokensPerSecond: number;
  readonly latencyMs: { readonly p50: number; readonly p95: number; readonly p99: number; readonly max: number };
  readonly firstTokenP50Ms: number;
  readonly tokensPerFrame: number;
  readonly serverCpuMsPer1kTokens: number;
  readonly serverEventLoopUtilization: number;
  /** The lowest and highest trial, to show how much the machine's noise moved the medians. */
  readonly range: {
    readonly tokensPerSecond: readonly [number, number];
    readonly latencyP50Ms: readonly [number, number];
    readonly latencyP99Ms: readonly [number, number];
    readonly tokensPerSecondVsDirect?: readonly [number, number];
  };
  /** Medians of the per-trial ratios. */
  readonly vsDirect?: Comparison;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] ?? Number.NaN) : ((sorted[mid - 1] ?? Number.NaN) + (sorted[mid] ?? Number.NaN)) / 2;
}

/** Groups phases by level and server, in the order they first ran; every group has at least one phase. */
export function groupByLevelAndServer<P extends { readonly concurrency: number; readonly label: string }>(phases: readonly P[]): P[][] {
  const groups = new Map<string, P[]>();
  for (const phase of phases) {
    const key = `${phase.concurrency}\u0000${phase.label}`;
    groups.set(key, [...(groups.get(key) ?? []), phase]);
  }
  return [...groups.values()];
}

/** The lowest and highest of some values (of the trials of one level and server). */
export function span(values: readonly number[]): readonly [number, number] {
  return [Math.min(...values), Math.max(...values)];
}

/** Sums the phases of the embedded bench per level and server and takes medians over the trials. */
export function summarize(phases: readonly PhaseRecord[]): SummaryRow[] {
  return groupByLevelAndServer(phases).map((group) => {
    const first = group[0] as PhaseRecord;
    const of = (pick: (p: PhaseRecord) => number): number => median(group.map(pick));
    const sum = (pick: (p: PhaseRecord) => number): number => group.reduce((n, p) => n + pick(p), 0);
    const compared = group.flatMap((p) => (p.vsDirect ? [p.vsDirect] : []));
    const ratio = (pick: (c: Comparison) => number): number => median(compared.map(pick));
    const row: SummaryRow = {
      concurrency: first.concurrency,
      label: first.label,
      mode: first.mode,
      coalesceMs: first.coalesceMs,
      trials: group.length,
      answers: sum((p) => p.answers),
      mismatches: sum((p) => p.mismatches),
      problems: sum((p) => p.problems),
      wrong: sum((p) => p.wrong),
      catchUpTokens: sum((p) => p.catchUpTokens),
      tokensPerSecond: of((p) => p.tokensPerSecond),
      latencyMs: {
        p50: of((p) => p.latencyMs.p50),
        p95: of((p) => p.latencyMs.p95),
        p99: of((p) => p.latencyMs.p99),
        max: of((p) => p.latencyMs.max),
      },
      firstTokenP50Ms: of((p) => p.firstTokenMs.p50),
      tokensPerFrame: of((p) => p.tokens / Math.max(1, p.deltaFrames)),
      serverCpuMsPer1kTokens: of((p) => p.serverCpuMsPer1kTokens),
      serverEventLoopUtilization: of((p) => p.serverEventLoopUtilization),
      range: {
        tokensPerSecond: span(group.map((p) => p.tokensPerSecond)),
        latencyP50Ms: span(group.map((p) => p.latencyMs.p50)),
        latencyP99Ms: span(group.map((p) => p.latencyMs.p99)),
        ...(compared.length > 0 ? { tokensPerSecondVsDirect: span(compared.map((c) => c.tokensPerSecond)) } : {}),
      },
    };
    if (compared.length === 0) return row;
    return {
      ...row,
      vsDirect: {
        tokensPerSecond: ratio((c) => c.tokensPerSecond),
        latencyP50: ratio((c) => c.latencyP50),
        latencyP95: ratio((c) => c.latencyP95),
        latencyP99: ratio((c) => c.latencyP99),
        addedLatencyP50Ms: ratio((c) => c.addedLatencyP50Ms),
        addedLatencyP99Ms: ratio((c) => c.addedLatencyP99Ms),
        serverCpuPerToken: ratio((c) => c.serverCpuPerToken),
      },
    };
  });
}

const COLUMNS: readonly Column<SummaryRow>[] = [
  { title: "conc.", cell: (r) => String(r.concurrency) },
  { title: "server", cell: (r) => r.label },
  { title: "answers", cell: (r) => String(r.answers) },
  { title: "tok/s", cell: (r) => r.tokensPerSecond.toFixed(0) },
  { title: "tok/s ×direct", cell: (r) => ratio(r.vsDirect?.tokensPerSecond) },
  { title: "p50 ms", cell: (r) => ms(r.latencyMs.p50) },
  { title: "p95 ms", cell: (r) => ms(r.latencyMs.p95) },
  { title: "p99 ms", cell: (r) => ms(r.latencyMs.p99) },
  { title: "max ms", cell: (r) => ms(r.latencyMs.max) },
  { title: "p50 +ms", cell: (r) => plus(r.vsDirect?.addedLatencyP50Ms) },
  { title: "p99 +ms", cell: (r) => plus(r.vsDirect?.addedLatencyP99Ms) },
  { title: "1st token p50 ms", cell: (r) => ms(r.firstTokenP50Ms) },
  { title: "tok/frame", cell: (r) => r.tokensPerFrame.toFixed(1) },
  { title: "CPU ms/1k tok", cell: (r) => r.serverCpuMsPer1kTokens.toFixed(0) },
  { title: "CPU ×direct", cell: (r) => ratio(r.vsDirect?.serverCpuPerToken) },
  { title: "ELU", cell: (r) => r.serverEventLoopUtilization.toFixed(2) },
  { title: "wrong", cell: (r) => String(r.wrong) },
];

/** The results as an aligned Markdown table. */
export function formatTable(rows: readonly SummaryRow[]): string {
  return markdownTable(COLUMNS, rows);
}

/** A table column: its title and how to print one row's cell. */
export interface Column<R> {
  readonly title: string;
  readonly cell: (row: R) => string;
}

/** Rows as an aligned Markdown table. */
export function markdownTable<R>(columns: readonly Column<R>[], rows: readonly R[]): string {
  const cells = rows.map((r) => columns.map((c) => c.cell(r)));
  const widths = columns.map((c, i) => Math.max(c.title.length, ...cells.map((r) => (r[i] ?? "").length)));
  const line = (values: readonly string[]): string => `| ${values.map((value, i) => value.padEnd(widths[i] ?? 0)).join(" | ")} |`;
  return [line(columns.map((c) => c.title)), line(widths.map((w) => "-".repeat(w))), ...cells.map(line)].join("\n");
}

/** Milliseconds, two decimals below 10. */
export function ms(value: number): string {
  return Number.isNaN(value) ? "-" : Math.abs(value) < 10 ? value.toFixed(2) : value.toFixed(1);
}

/** A signed difference in milliseconds. */
export function plus(value: number | undefined): string {
  return value === undefined || Number.isNaN(value) ? "-" : `${value >= 0 ? "+" : ""}${ms(value)}`;
}

/** A ratio such as `1.25×`, or `-` when there is none. */
export function ratio(value: number | undefined): string {
  return value === undefined || !Number.isFinite(value) ? "-" : `${value < 10 ? value.toFixed(2) : value.toFixed(0)}×`;
}

/** The machine a bench ran on, as both benches record it. */
export function machineInfo(): { cpus: number; cpuModel: string; memoryGiB: number; platform: string; node: string } {
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? "unknown",
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    platform: `${platform()} ${release()}`,
    node: process.version,
  };
}

/** Writes a bench's results as indented JSON, creating the directory. */
export function writeResults(path: string, results: unknown): void {
  const out = resolve(path);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
}

/** The commit the bench ran on, and the files of `src` that differed from it, for the results. */
export function gitState(): string {
  try {
    const head = execFileSync("git", ["rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim();
    const dirty = execFileSync("git", ["status", "--porcelain", "--", "src"], { encoding: "utf8" }).trim();
    return dirty === ""
      ? head
      : `${head} with uncommitted changes in src: ${dirty
          .split("\n")
          .map((l) => l.trim())
          .join(", ")}`;
  } catch {
    return "unknown";
  }
}
