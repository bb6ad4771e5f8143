import { groupByLevelAndServer, markdownTable, median, ms, plus, ratio, span, type Column, type MeasuredPhase } from "./report.ts";

/** One measured phase of the distributed bench. */
export interface DistributedPhase extends MeasuredPhase {
  /** The sim's pace per answer, and the answer length, at this level. */
  readonly tokensPerSecondPerAnswer: number;
  readonly maxTokens: number;
  /** Clients arrived spread over this long. */
  readonly rampMs: number;
  readonly mode: "direct" | "floor" | "lifeline";
  /** What the model offered while every answer streamed: concurrency × its pace. */
  readonly offeredTokensPerSecond: number;
  /** Tokens received per second over the central 80% of deliveries (ramp and drain left out). */
  readonly sustainedTokensPerSecond: number;
  readonly sustainedWindowMs: number;
  /** The most answers streaming at one moment: below `concurrency` when the server could not start them all in time. */
  readonly peakStreaming: number;
  readonly deliveredPerSecond: readonly number[];
  readonly serverCpuUsPerToken: number;
  readonly redisCpuMs: number;
  readonly redisCpuUsPerToken: number;
  /** Commands the server under test sent to Redis per delivered token (counted in ioredis). */
  readonly redisRequestsPerToken: number;
  readonly redisRequestsByCommandPerToken: Readonly<Record<string, number>>;
  /** Commands Redis ran per delivered token, by command, those called inside Lua scripts included (INFO commandstats). */
  readonly redisCallsPerToken: Readonly<Record<string, number>>;
  /** Microseconds Redis spent per delivered token, by command; a script's time includes its inner calls. */
  readonly redisUsecPerToken: Readonly<Record<string, number>>;
  /** CPU that other processes on the machine used during the phase, in cores (the neighbours' share of the 2 CPUs). */
  readonly neighbourCores: number;
  /** Machine-wide kernel counters during the phase: connections dropped at a full listen queue, SYNs sent again. */
  readonly listenOverflows: number;
  readonly synRetransmits: number;
  readonly vsDirect?: Ratios;
  readonly vsFloor?: Ratios;
}

/** A phase against another of the same level and trial. */
export interface Ratios {
  readonly sustainedTokensPerSecond: number;
  readonly tokensPerSecond: number;
  readonly addedLatencyP50Ms: number;
  readonly addedLatencyP99Ms: number;
  /** CPU per token of the bench process plus redis-server. */
  readonly cpuPerToken: number;
}

export function ratiosOf(phase: DistributedPhase, base: DistributedPhase): Ratios {
  return {
    sustainedTokensPerSecond: phase.sustainedTokensPerSecond / base.sustainedTokensPerSecond,
    tokensPerSecond: phase.tokensPerSecond / base.tokensPerSecond,
    addedLatencyP50Ms: phase.latencyMs.p50 - base.latencyMs.p50,
    addedLatencyP99Ms: phase.latencyMs.p99 - base.latencyMs.p99,
    cpuPerToken: totalCpuUsPerToken(phase) / totalCpuUsPerToken(base),
  };
}

export function totalCpuUsPerToken(phase: Pick<DistributedPhase, "serverCpuUsPerToken" | "redisCpuUsPerToken">): number {
  return phase.serverCpuUsPerToken + (Number.isNaN(phase.redisCpuUsPerToken) ? 0 : phase.redisCpuUsPerToken);
}

/** One line of the results: the median over the trials of one level and one server. */
export interface DistributedRow {
  readonly concurrency: number;
  readonly label: string;
  readonly mode: DistributedPhase["mode"];
  readonly tokensPerSecondPerAnswer: number;
  readonly maxTokens: number;
  readonly trials: number;
  /** All trials together. */
  readonly answers: number;
  readonly wrong: number;
  readonly catchUpTokens: number;
  /** Medians over the trials from here on. */
  readonly offeredTokensPerSecond: number;
  readonly sustainedTokensPerSecond: number;
  readonly tokensPerSecond: number;
  readonly peakStreaming: number;
  readonly listenOverflows: number;
  readonly latencyMs: { readonly p50: number; readonly p95: number; readonly p99: number; readonly max: number };
  readonly firstTokenP50Ms: number;
  readonly firstTokenP99Ms: number;
  readonly firstEmitP99Ms: number;
  readonly tokensPerFrame: number;
  readonly serverCpuUsPerToken: number;
  readonly redisCpuUsPerToken: number;
  readonly redisRequestsPerToken: number;
  readonly redisRequestsByCommandPerToken: Readonly<Record<string, number>>;
  readonly redisCallsPerToken: Readonly<Record<string, number>>;
  readonly redisUsecPerToken: Readonly<Record<string, number>>;
  readonly serverEventLoopUtilization: number;
  readonly loadAverage: number;
  readonly neighbourCores: number;
  /** The lowest and highest trial. */
  readonly range: {
    readonly sustainedTokensPerSecond: readonly [number, number];
    readonly latencyP50Ms: readonly [number, number];
    readonly latencyP99Ms: readonly [number, number];
  };
  /** Medians of the per-trial ratios. */
  readonly vsDirect?: Ratios;
  readonly vsFloor?: Ratios;
}

export function summarizeDistributed(phases: readonly DistributedPhase[]): DistributedRow[] {
  return groupByLevelAndServer(phases).map((group) => {
    const first = group[0] as DistributedPhase;
    const of = (pick: (p: DistributedPhase) => number): number => median(group.map(pick));
    const sum = (pick: (p: DistributedPhase) => number): number => group.reduce((n, p) => n + pick(p), 0);
    const ratios = (pick: (p: DistributedPhase) => Ratios | undefined): Ratios | undefined => {
      const list = group.flatMap((p) => {
        const r = pick(p);
        return r ? [r] : [];
      });
      if (list.length === 0) return undefined;
      const m = (f: (r: Ratios) => number): number => median(list.map(f));
      return {
        sustainedTokensPerSecond: m((r) => r.sustainedTokensPerSecond),
        tokensPerSecond: m((r) => r.tokensPerSecond),
        addedLatencyP50Ms: m((r) => r.addedLatencyP50Ms),
        addedLatencyP99Ms: m((r) => r.addedLatencyP99Ms),
        cpuPerToken: m((r) => r.cpuPerToken),
      };
    };
    const byCommand = (pick: (p: DistributedPhase) => Readonly<Record<string, number>>): Record<string, number> => {
      const names = [...new Set(group.flatMap((p) => Object.keys(pick(p))))].sort();
      return Object.fromEntries(names.map((name) => [name, of((p) => pick(p)[name] ?? 0)]));
    };
    const vsDirect = ratios((p) => p.vsDirect);
    const vsFloor = ratios((p) => p.vsFloor);
    return {
      concurrency: first.concurrency,
      label: first.label,
      mode: first.mode,
      tokensPerSecondPerAnswer: first.tokensPerSecondPerAnswer,
      maxTokens: first.maxTokens,
      trials: group.length,
      answers: sum((p) => p.answers),
      wrong: sum((p) => p.wrong),
      catchUpTokens: sum((p) => p.catchUpTokens),
      offeredTokensPerSecond: first.offeredTokensPerSecond,
      sustainedTokensPerSecond: of((p) => p.sustainedTokensPerSecond),
      tokensPerSecond: of((p) => p.tokensPerSecond),
      peakStreaming: of((p) => p.peakStreaming),
      listenOverflows: sum((p) => p.listenOverflows),
      latencyMs: {
        p50: of((p) => p.latencyMs.p50),
        p95: of((p) => p.latencyMs.p95),
        p99: of((p) => p.latencyMs.p99),
        max: of((p) => p.latencyMs.max),
      },
      firstTokenP50Ms: of((p) => p.firstTokenMs.p50),
      firstTokenP99Ms: of((p) => p.firstTokenMs.p99),
      firstEmitP99Ms: of((p) => p.firstEmitMs.p99),
      tokensPerFrame: of((p) => p.tokens / Math.max(1, p.deltaFrames)),
      serverCpuUsPerToken: of((p) => p.serverCpuUsPerToken),
      redisCpuUsPerToken: of((p) => p.redisCpuUsPerToken),
      redisRequestsPerToken: of((p) => p.redisRequestsPerToken),
      redisRequestsByCommandPerToken: byCommand((p) => p.redisRequestsByCommandPerToken),
      redisCallsPerToken: byCommand((p) => p.redisCallsPerToken),
      redisUsecPerToken: byCommand((p) => p.redisUsecPerToken),
      serverEventLoopUtilization: of((p) => p.serverEventLoopUtilization),
      loadAverage: of((p) => p.loadAverage),
      neighbourCores: of((p) => p.neighbourCores),
      range: {
        sustainedTokensPerSecond: span(group.map((p) => p.sustainedTokensPerSecond)),
        latencyP50Ms: span(group.map((p) => p.latencyMs.p50)),
        latencyP99Ms: span(group.map((p) => p.latencyMs.p99)),
      },
      ...(vsDirect ? { vsDirect } : {}),
      ...(vsFloor ? { vsFloor } : {}),
    };
  });
}

const COLUMNS: readonly Column<DistributedRow>[] = [
  { title: "answers at once", cell: (r) => String(r.concurrency) },
  { title: "tok/s each", cell: (r) => String(r.tokensPerSecondPerAnswer) },
  { title: "server", cell: (r) => r.label },
  { title: "offered tok/s", cell: (r) => r.offeredTokensPerSecond.toFixed(0) },
  { title: "sustained tok/s", cell: (r) => r.sustainedTokensPerSecond.toFixed(0) },
  { title: "×direct", cell: (r) => ratio(r.vsDirect?.sustainedTokensPerSecond) },
  { title: "peak streaming", cell: (r) => r.peakStreaming.toFixed(0) },
  { title: "×floor", cell: (r) => ratio(r.vsFloor?.sustainedTokensPerSecond) },
  { title: "p50 ms", cell: (r) => ms(r.latencyMs.p50) },
  { title: "p99 ms", cell: (r) => ms(r.latencyMs.p99) },
  { title: "p50 +floor", cell: (r) => plus(r.vsFloor?.addedLatencyP50Ms) },
  { title: "p99 +floor", cell: (r) => plus(r.vsFloor?.addedLatencyP99Ms) },
  { title: "1st token p50/p99 ms", cell: (r) => `${ms(r.firstTokenP50Ms)} / ${ms(r.firstTokenP99Ms)}` },
  { title: "node µs/tok", cell: (r) => r.serverCpuUsPerToken.toFixed(0) },
  {
    title: "redis µs/tok",
    cell: (r) => (Number.isNaN(r.redisCpuUsPerToken) || r.mode === "direct" ? "-" : r.redisCpuUsPerToken.toFixed(0)),
  },
  { title: "redis req/tok", cell: (r) => (r.mode === "direct" ? "-" : r.redisRequestsPerToken.toFixed(1)) },
  { title: "CPU ×floor", cell: (r) => ratio(r.vsFloor?.cpuPerToken) },
  { title: "ELU", cell: (r) => r.serverEventLoopUtilization.toFixed(2) },
  { title: "wrong", cell: (r) => `${r.wrong}/${r.answers}` },
];

/** The results as an aligned Markdown table. */
export function formatDistributedTable(rows: readonly DistributedRow[]): string {
  return markdownTable(COLUMNS, rows);
}
