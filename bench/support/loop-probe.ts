/**
 * A preload for every Node process of `bench/peers.ts` (`node --import tsx --import <this file>`):
 * it watches the process's event loop with `monitorEventLoopDelay` and, on each SIGUSR2 from the
 * bench, writes what it saw since the previous one to `LOOP_PROBE_OUT` (JSON, replaced
 * atomically) and starts over. With `LOOP_PROBE_PROFILE` set it also records a CPU profile from
 * the first SIGUSR2 to the second and writes it there, so a profile covers the measured phase only,
 * with a sampled allocation profile beside it (`.heapprofile`, collected objects included) unless
 * `LOOP_PROBE_HEAP=off` (the sampling slows a busy process down several times over). With
 * `LOOP_PROBE_HEAP=survivors` it leaves out what died young: where what the young generation's
 * collections copy comes from.
 * Without `LOOP_PROBE_OUT` it does nothing.
 */
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import { PerformanceObserver, constants as perfConstants, monitorEventLoopDelay } from "node:perf_hooks";

/** What one window of the event loop looked like; delays in ms, beyond the probe's 10 ms tick. */
export interface LoopReport {
  readonly pid: number;
  /** 0 when the probe loaded, then one more per SIGUSR2. */
  readonly mark: number;
  readonly windowMs: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly meanMs: number;
  /** Times the loop was held more than 100 ms, seen by a 20 ms timer. */
  readonly stallsOver100Ms: number;
  /**
   * What the main thread did during those stalls, from Linux's `/proc/thread-self/schedstat`: the
   * stalls in which it ran more than 120 ms on a CPU (100 ms beyond the timer's 20 ms, the rule of a
   * stall itself; the others were mostly time the machine did not schedule it), the most it ran in
   * one stall, and the time it waited for a CPU in all of them. Absent where the file is not.
   */
  readonly stallsOnCpu?: {
    readonly over100Ms: number;
    readonly maxOnCpuMs: number;
    readonly runQueueMs: number;
  };
  /** Garbage collection in the window (`PerformanceObserver`, entry type `gc`): pauses, the longest, the full (mark-compact) ones. */
  readonly gc?: {
    readonly pauses: number;
    readonly totalMs: number;
    readonly maxMs: number;
    readonly fullPauses: number;
    readonly fullMaxMs: number;
  };
  /** When a profile was asked for: where the second mark wrote it. */
  readonly profile?: string;
}

const RESOLUTION_MS = 10;
const STALL_TICK_MS = 20;
const STALL_MS = 100;
const MAX_STALL_WINDOWS = 200;
/**
 * A stall that was the process's own: it ran on a CPU longer than the 100 ms beyond the timer's
 * tick that make a stall (`profile-summary.ts --on-cpu` picks the same ones).
 */
export const ON_CPU_STALL_MS = STALL_TICK_MS + STALL_MS;

const out = process.env.LOOP_PROBE_OUT;
if (out !== undefined && out !== "") {
  const profilePath = process.env.LOOP_PROBE_PROFILE;
  const histogram = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  histogram.enable();
  let stalls = 0;
  /** Where the stalls since the last mark were, on the CPU profile's clock (µs of `process.hrtime`). */
  let stallWindows: [number, number, number?][] = [];
  const hrMicros = (): number => Number(process.hrtime.bigint() / 1000n);
  let last = performance.now();
  let lastUs = hrMicros();
  let lastSched = schedStat();
  let onCpu = { over100Ms: 0, maxOnCpuMs: 0, runQueueMs: 0 };
  setInterval(() => {
    const now = performance.now();
    const nowUs = hrMicros();
    const sched = schedStat();
    if (now - last - STALL_TICK_MS > STALL_MS) {
      stalls++;
      if (sched === undefined || lastSched === undefined) {
        if (stallWindows.length < MAX_STALL_WINDOWS) stallWindows.push([lastUs, nowUs]);
      } else {
        const ranMs = (sched.runNs - lastSched.runNs) / 1e6;
        if (stallWindows.length < MAX_STALL_WINDOWS) stallWindows.push([lastUs, nowUs, ranMs]);
        if (ranMs > ON_CPU_STALL_MS) onCpu.over100Ms++;
        onCpu.maxOnCpuMs = Math.max(onCpu.maxOnCpuMs, ranMs);
        onCpu.runQueueMs += (sched.waitNs - lastSched.waitNs) / 1e6;
      }
    }
    last = now;
    lastUs = nowUs;
    lastSched = sched;
  }, STALL_TICK_MS).unref();

  let gc = { pauses: 0, totalMs: 0, maxMs: 0, fullPauses: 0, fullMaxMs: 0 };
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      gc.pauses++;
      gc.totalMs += entry.duration;
      gc.maxMs = Math.max(gc.maxMs, entry.duration);
      if ((entry as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind === perfConstants.NODE_PERFORMANCE_GC_MAJOR) {
        gc.fullPauses++;
        gc.fullMaxMs = Math.max(gc.fullMaxMs, entry.duration);
      }
    }
  }).observe({ entryTypes: ["gc"] });

  let mark = 0;
  let since = performance.now();
  let session: Session | undefined;
  let profileWritten: string | undefined;
  // The histogram holds the time between two of its timer's ticks; the delay is what exceeds the resolution.
  const ns = (value: number): number => Math.max(0, value / 1e6 - RESOLUTION_MS);
  const write = (): void => {
    const now = performance.now();
    const report: LoopReport = {
      pid: process.pid,
      mark,
      windowMs: now - since,
      p50Ms: histogram.count > 0 ? ns(histogram.percentile(50)) : 0,
      p99Ms: histogram.count > 0 ? ns(histogram.percentile(99)) : 0,
      maxMs: histogram.count > 0 ? ns(histogram.max) : 0,
      meanMs: histogram.count > 0 ? ns(histogram.mean) : 0,
      stallsOver100Ms: stalls,
      ...(lastSched === undefined ? {} : { stallsOnCpu: onCpu }),
      gc,
      ...(profileWritten === undefined ? {} : { profile: profileWritten }),
    };
    writeFileSync(`${out}.tmp`, JSON.stringify(report));
    renameSync(`${out}.tmp`, out);
    startOver();
  };
  const startOver = (): void => {
    const now = performance.now();
    histogram.reset();
    stalls = 0;
    onCpu = { over100Ms: 0, maxOnCpuMs: 0, runQueueMs: 0 };
    gc = { pauses: 0, totalMs: 0, maxMs: 0, fullPauses: 0, fullMaxMs: 0 };
    stallWindows = [];
    since = now;
  };
  /** Starts the profile at the first mark (true then) and writes it at the second. */
  const toggleProfile = (): boolean => {
    if (profilePath === undefined || profilePath === "") return false;
    if (session === undefined) {
      session = new Session();
      session.connect();
      session.post("Profiler.enable");
      session.post("Profiler.start");
      if (process.env.LOOP_PROBE_HEAP === "off") return true;
      // Where the garbage comes from: every allocation sampled, the collected ones too.
      session.post("HeapProfiler.enable");
      session.post("HeapProfiler.startSampling", {
        samplingInterval: 64 * 1024,
        includeObjectsCollectedByMajorGC: true,
        includeObjectsCollectedByMinorGC: process.env.LOOP_PROBE_HEAP !== "survivors",
      });
      return true;
    }
    const running = session;
    const profiledStalls = stallWindows; // the stalls of the profiled stretch (reset by the write that follows)
    running.post("Profiler.stop", (error, result) => {
      if (error === null) {
        writeFileSync(profilePath, JSON.stringify(result.profile));
        // Beside it, where the loop was held: `profile-summary.ts --stalls` looks at those stretches only.
        writeFileSync(profilePath.replace(/\.cpuprofile$/, ".stalls.json"), JSON.stringify(profiledStalls));
        profileWritten = profilePath;
      }
      if (process.env.LOOP_PROBE_HEAP === "off") return running.disconnect();
      running.post("HeapProfiler.stopSampling", (heapError, heap) => {
        if (heapError === null) writeFileSync(profilePath.replace(/\.cpuprofile$/, ".heapprofile"), JSON.stringify(heap.profile));
        running.disconnect();
      });
    });
    return false;
  };
  process.on("SIGUSR2", () => {
    mark++;
    const started = toggleProfile();
    write();
    // Starting a profiler holds the loop for 100 ms and more (it records every function compiled so
    // far): that stall is the probe's own. The window starts again once the loop's timers have seen it.
    if (started) setTimeout(startOver, 2 * STALL_TICK_MS);
  });
  write();
}

/** The main thread's time on a CPU and waiting for one, in ns (Linux); `undefined` elsewhere. */
function schedStat(): { runNs: number; waitNs: number } | undefined {
  try {
    const [run, wait] = readFileSync("/proc/thread-self/schedstat", "utf8").split(" ");
    return { runNs: Number(run), waitNs: Number(wait) };
  } catch {
    return undefined;
  }
}
