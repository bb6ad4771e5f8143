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
 * With `LOOP_PROBE_WATCH=1` a watchdog thread samples what a held main thread is doing (`held`).
 * Without `LOOP_PROBE_OUT` it does nothing.
 */
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import { Worker } from "node:worker_threads";
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
  /**
   * What the main thread was doing while its loop was held past {@link HELD_MS}, sampled every
   * {@link WATCH_MS} by a watchdog thread from `/proc/<pid>/task/<pid>/`: counts by its scheduler
   * state (`R-on-cpu` when it ran most of the time since the last sample, `R-waiting` when it was
   * runnable but mostly waited for a CPU, `S` asleep, `D` in uninterruptible I/O), the kernel
   * function it sleeps in (`wchan`) and the system call it is in (`syscall`'s number, or
   * `running`). Only with `LOOP_PROBE_WATCH=1`, and where those files are.
   */
  readonly held?: Readonly<Record<string, number>>;
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
/** How long the loop must be held before the watchdog samples the main thread, and how often it does. */
const HELD_MS = 60;
const WATCH_MS = 5;
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
  // Opt-in: its thread and its reads of /proc every few milliseconds are a load of their own.
  const watchdog = process.env.LOOP_PROBE_WATCH === "1" ? startWatchdog(`${out}.held.json`) : undefined;
  let heldBefore = watchdog?.read() ?? {};
  setInterval(() => {
    watchdog?.beat();
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
      ...(watchdog === undefined ? {} : { held: grownSince(watchdog.read(), heldBefore) }),
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
    heldBefore = watchdog?.read() ?? {};
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

/**
 * A thread that watches the main one: the main thread's timer beats into shared memory, and when
 * no beat came for {@link HELD_MS} the thread samples what the main thread is doing (see
 * {@link LoopReport.held}), adding to counts it keeps in `file` since the start. `undefined` where
 * `/proc` is not.
 */
function startWatchdog(file: string): { beat(): void; read(): Record<string, number> } | undefined {
  try {
    readFileSync(`/proc/${process.pid}/task/${process.pid}/wchan`, "utf8");
  } catch {
    return undefined;
  }
  const shared = new SharedArrayBuffer(8);
  const beats = new Float64Array(shared);
  beats[0] = Date.now();
  const code = `
    const { workerData } = require("node:worker_threads");
    const { readFileSync, writeFileSync, renameSync, readdirSync, readlinkSync } = require("node:fs");
    const { file, task, heldMs, watchMs } = workerData;
    const procDir = task.slice(0, task.lastIndexOf("/"));
    const mainTid = task.slice(task.lastIndexOf("/") + 1);
    const selfTid = readlinkSync("/proc/thread-self").split("/").pop();
    const beats = new Float64Array(workerData.shared);
    const counts = {};
    const read = (name) => { try { return readFileSync(task + name, "utf8").trim(); } catch { return "?"; } };
    let ranNs = 0;
    setInterval(() => {
      const ran = Number(read("/schedstat").split(" ")[0]);
      const ranSince = ran - ranNs;
      ranNs = ran;
      if (Date.now() - beats[0] < heldMs) return;
      const stat = read("/stat");
      let state = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
      // Runnable: on a CPU for most of the time since the last sample, or waiting for one.
      if (state === "R") state = ranSince >= watchMs * 1e6 * 0.5 ? "R-on-cpu" : "R-waiting";
      if (state === "R-waiting") {
        // Which of the process's own threads were runnable meanwhile (its collector's helpers, say).
        let own = 0;
        for (const tid of readdirSync(procDir)) {
          if (tid === mainTid || tid === selfTid) continue;
          try {
            const s = readFileSync(procDir + "/" + tid + "/stat", "utf8");
            if (s.slice(s.lastIndexOf(")") + 2, s.lastIndexOf(")") + 3) === "R") own++;
          } catch {}
        }
        state += "+" + own + "own";
      }
      const [call, arg] = read("/syscall").split(" ");
      let what = call === "running" ? "running" : "syscall " + call;
      // fsync, fdatasync: of which file.
      if (call === "74" || call === "75") {
        try {
          what += " " + readlinkSync(procDir.slice(0, procDir.lastIndexOf("/")) + "/fd/" + Number(arg)).split("/").pop();
        } catch {}
      }
      const key = state + " " + (read("/wchan") || "0") + " " + what;
      counts[key] = (counts[key] || 0) + 1;
      writeFileSync(file + ".tmp", JSON.stringify(counts));
      renameSync(file + ".tmp", file);
    }, watchMs);
  `;
  const thread = new Worker(code, {
    eval: true,
    workerData: { file, task: `/proc/${process.pid}/task/${process.pid}`, heldMs: HELD_MS, watchMs: WATCH_MS, shared },
  });
  thread.unref();
  return {
    beat: () => {
      beats[0] = Date.now();
    },
    read: () => {
      try {
        return JSON.parse(readFileSync(file, "utf8")) as Record<string, number>;
      } catch {
        return {};
      }
    },
  };
}

/** The counts of `now` less those of `before`, the ones that grew. */
function grownSince(now: Record<string, number>, before: Record<string, number>): Record<string, number> {
  const grown: Record<string, number> = {};
  for (const [key, n] of Object.entries(now)) if (n > (before[key] ?? 0)) grown[key] = n - (before[key] ?? 0);
  return grown;
}
