import type { LoopReport } from "./loop-probe.ts";
import type { ReaderResult } from "./peer-readers.ts";
import type { SystemName } from "./peer-systems.ts";
import { markdownTable, median, ms, plus, ratio, type Column } from "./report.ts";

/** One process of a phase: its CPU per token delivered and its event loop over the measured window. */
export interface ProcessRecord {
  readonly name: string;
  readonly cpuMs: number;
  readonly cpuUsPerToken: number;
  /** Part of the system's cost (producer, gateway, worker, node, redis-server), or beside it (readers, model). */
  readonly system: boolean;
  /** None for redis-server, which is not a Node process. */
  readonly loop?: Omit<LoopReport, "pid" | "mark">;
}

/** One system serving one workload once. */
export interface PeerPhase {
  readonly workload: string;
  readonly system: SystemName;
  readonly rep: number;
  readonly answers: number;
  readonly tokensPerAnswer: number;
  /** Answers × tokens per second each, for the paced workloads; null for the fast ones (as fast as it goes). */
  readonly offeredTokensPerSecond: number | null;
  /** Paced: tokens per second on the phase's plateau; fast: over the span from first to last token received. */
  readonly deliveredTokensPerSecond: number;
  readonly readers: ReaderResult;
  readonly processes: readonly ProcessRecord[];
  /** CPU of the system's processes together (redis-server included where the system uses it), per token. */
  readonly systemCpuUsPerToken: number;
  readonly loadAverage: number;
  /** CPU the rest of the machine used meanwhile, in cores: a shared machine's noise. */
  readonly neighbourCores: number;
  /** Handshakes the kernel dropped at a full accept queue during the window (machine-wide). */
  readonly listenOverflows: number;
  readonly synRetransmits: number;
  readonly clock: { readonly modelOffsetMs: number; readonly readersOffsetMs: number; readonly roundTripMs: number };
  /** Against resumable-stream in the same repetition. */
  readonly vsResumableStream?: Ratios;
}

export interface Ratios {
  readonly delivered: number;
  readonly addedP50Ms: number;
  readonly addedP99Ms: number;
  readonly p99: number;
  readonly systemCpu: number;
}

export function ratiosOf(phase: PeerPhase, base: PeerPhase): Ratios {
  return {
    delivered: phase.deliveredTokensPerSecond / base.deliveredTokensPerSecond,
    addedP50Ms: phase.readers.latencyMs.p50 - base.readers.latencyMs.p50,
    addedP99Ms: phase.readers.latencyMs.p99 - base.readers.latencyMs.p99,
    p99: phase.readers.latencyMs.p99 / base.readers.latencyMs.p99,
    systemCpu: phase.systemCpuUsPerToken / base.systemCpuUsPerToken,
  };
}

/** One workload and one system over its repetitions: medians, except where said. */
export interface PeerSummary {
  readonly workload: string;
  readonly system: SystemName;
  readonly reps: number;
  readonly offeredTokensPerSecond: number | null;
  readonly deliveredTokensPerSecond: number;
  readonly deliveredRange: readonly [number, number];
  readonly latencyMs: { readonly p50: number; readonly p99: number; readonly max: number };
  readonly systemCpuUsPerToken: number;
  readonly neighbourCores: number;
  /** The most answers streaming at once (first to last token): below S, some ran late rather than together. */
  readonly peakStreaming: number;
  readonly firstTokenP50Ms: number;
  /** Sums over the repetitions. */
  readonly answers: number;
  readonly exact: number;
  readonly incomplete: number;
  readonly broken: number;
  readonly processes: readonly {
    readonly name: string;
    readonly cpuUsPerToken: number;
    readonly loopP99Ms: number | null;
    /** The highest over the repetitions. */
    readonly loopMaxMs: number | null;
    readonly stallsOver100Ms: number | null;
    /** Of those, the ones the process spent on a CPU itself (`ON_CPU_STALL_MS` of `loop-probe.ts`; summed), and the most it ran in one (highest). */
    readonly stallsOnCpuOver100Ms: number | null;
    readonly stallMaxOnCpuMs: number | null;
  }[];
  readonly vsResumableStream?: Ratios;
}

export function summarize(phases: readonly PeerPhase[]): PeerSummary[] {
  const groups = new Map<string, PeerPhase[]>();
  for (const p of phases) groups.set(`${p.workload}\u0000${p.system}`, [...(groups.get(`${p.workload}\u0000${p.system}`) ?? []), p]);
  return [...groups.values()].map((group) => {
    const first = group[0] as PeerPhase;
    const of = (pick: (p: PeerPhase) => number): number => median(group.map(pick));
    const sum = (pick: (p: PeerPhase) => number): number => group.reduce((n, p) => n + pick(p), 0);
    const compared = group.flatMap((p) => (p.vsResumableStream ? [p.vsResumableStream] : []));
    const names = [...new Set(group.flatMap((p) => p.processes.map((q) => q.name)))];
    const processes = names.map((name) => {
      const records = group.flatMap((p) => p.processes.filter((q) => q.name === name));
      const loops = records.flatMap((r) => (r.loop ? [r.loop] : []));
      const onCpu = loops.flatMap((l) => (l.stallsOnCpu ? [l.stallsOnCpu] : []));
      return {
        name,
        cpuUsPerToken: median(records.map((r) => r.cpuUsPerToken)),
        loopP99Ms: loops.length > 0 ? median(loops.map((l) => l.p99Ms)) : null,
        loopMaxMs: loops.length > 0 ? Math.max(...loops.map((l) => l.maxMs)) : null,
        stallsOver100Ms: loops.length > 0 ? loops.reduce((n, l) => n + l.stallsOver100Ms, 0) : null,
        stallsOnCpuOver100Ms: onCpu.length > 0 ? onCpu.reduce((n, c) => n + c.over100Ms, 0) : null,
        stallMaxOnCpuMs: onCpu.length > 0 ? Math.max(...onCpu.map((c) => c.maxOnCpuMs)) : null,
      };
    });
    const delivered = group.map((p) => p.deliveredTokensPerSecond);
    return {
      workload: first.workload,
      system: first.system,
      reps: group.length,
      offeredTokensPerSecond: first.offeredTokensPerSecond,
      deliveredTokensPerSecond: median(delivered),
      deliveredRange: [Math.min(...delivered), Math.max(...delivered)] as const,
      latencyMs: {
        p50: of((p) => p.readers.latencyMs.p50),
        p99: of((p) => p.readers.latencyMs.p99),
        max: of((p) => p.readers.latencyMs.max),
      },
      systemCpuUsPerToken: of((p) => p.systemCpuUsPerToken),
      neighbourCores: of((p) => p.neighbourCores),
      peakStreaming: of((p) => p.readers.peakStreaming),
      firstTokenP50Ms: of((p) => p.readers.firstTokenMs.p50),
      answers: sum((p) => p.answers),
      exact: sum((p) => p.readers.exact),
      incomplete: sum((p) => p.readers.incomplete),
      broken: sum((p) => p.readers.broken),
      processes,
      ...(compared.length === 0
        ? {}
        : {
            vsResumableStream: {
              delivered: median(compared.map((c) => c.delivered)),
              addedP50Ms: median(compared.map((c) => c.addedP50Ms)),
              addedP99Ms: median(compared.map((c) => c.addedP99Ms)),
              p99: median(compared.map((c) => c.p99)),
              systemCpu: median(compared.map((c) => c.systemCpu)),
            },
          }),
    };
  });
}

const count = (n: number): string => Math.round(n).toLocaleString("en-US");

const MAIN_COLUMNS: readonly Column<PeerSummary>[] = [
  { title: "workload", cell: (r) => r.workload },
  { title: "system", cell: (r) => r.system },
  { title: "offered tok/s", cell: (r) => (r.offeredTokensPerSecond === null ? "as fast as taken" : count(r.offeredTokensPerSecond)) },
  { title: "delivered tok/s", cell: (r) => count(r.deliveredTokensPerSecond) },
  { title: "×RS", cell: (r) => ratio(r.vsResumableStream?.delivered) },
  { title: "p50 ms", cell: (r) => ms(r.latencyMs.p50) },
  { title: "p99 ms", cell: (r) => ms(r.latencyMs.p99) },
  { title: "max ms", cell: (r) => ms(r.latencyMs.max) },
  { title: "peak answers", cell: (r) => String(Math.round(r.peakStreaming)) },
  { title: "p50 +ms vs RS", cell: (r) => plus(r.vsResumableStream?.addedP50Ms) },
  { title: "p99 ×RS", cell: (r) => ratio(r.vsResumableStream?.p99) },
  { title: "CPU µs/tok", cell: (r) => r.systemCpuUsPerToken.toFixed(0) },
  { title: "CPU ×RS", cell: (r) => ratio(r.vsResumableStream?.systemCpu) },
  { title: "neighbours", cell: (r) => r.neighbourCores.toFixed(2) },
  {
    title: "exact",
    cell: (r) => `${r.exact}/${r.answers}${r.incomplete > 0 ? `, ${r.incomplete} cut` : ""}${r.broken > 0 ? `, ${r.broken} broken` : ""}`,
  },
];

/** The comparison: one row per workload and system. */
export function formatMainTable(rows: readonly PeerSummary[]): string {
  return markdownTable(MAIN_COLUMNS, rows);
}

interface ProcessRow {
  readonly workload: string;
  readonly system: string;
  readonly name: string;
  readonly cpuUsPerToken: number;
  readonly loopP99Ms: number | null;
  readonly loopMaxMs: number | null;
  readonly stallsOver100Ms: number | null;
  readonly stallsOnCpuOver100Ms: number | null;
  readonly stallMaxOnCpuMs: number | null;
}

const PROCESS_COLUMNS: readonly Column<ProcessRow>[] = [
  { title: "workload", cell: (r) => r.workload },
  { title: "system", cell: (r) => r.system },
  { title: "process", cell: (r) => r.name },
  { title: "CPU µs/tok", cell: (r) => r.cpuUsPerToken.toFixed(1) },
  { title: "loop delay p99 ms", cell: (r) => (r.loopP99Ms === null ? "-" : ms(r.loopP99Ms)) },
  { title: "loop delay max ms", cell: (r) => (r.loopMaxMs === null ? "-" : ms(r.loopMaxMs)) },
  { title: "stalls > 100 ms", cell: (r) => (r.stallsOver100Ms === null ? "-" : String(r.stallsOver100Ms)) },
  { title: "of them > 120 ms on CPU", cell: (r) => (r.stallsOnCpuOver100Ms === null ? "-" : String(r.stallsOnCpuOver100Ms)) },
  { title: "most on CPU in a stall ms", cell: (r) => (r.stallMaxOnCpuMs === null ? "-" : ms(r.stallMaxOnCpuMs)) },
];

/** Every process of every system: CPU per token and event-loop delay. */
export function formatProcessTable(rows: readonly PeerSummary[]): string {
  return markdownTable(
    PROCESS_COLUMNS,
    rows.flatMap((r) => r.processes.map((p) => ({ workload: r.workload, system: r.system, ...p }))),
  );
}
