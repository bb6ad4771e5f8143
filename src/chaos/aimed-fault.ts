import type { Timeline } from "../projections/timeline.ts";
import { findAnswerInFlight, type AimOptions, type AnswerInFlight } from "./in-flight.ts";
import type { LifelineProcess } from "./lifeline-process.ts";

/** A fault injected while an answer was in flight, and the answer it was aimed at. */
export interface AimedFault {
  /** What was hit: a worker process, a gateway process, the Redis primary … */
  readonly kind: string;
  /** Which one: a worker's name, a gateway's URL … */
  readonly target: string;
  /** The answer in flight, as its log stood just before the fault. */
  readonly answer: AnswerInFlight;
  /** When the fault was injected (ms since the epoch). */
  readonly at: number;
}

/** A process that has not exited. */
export function isRunning(process: LifelineProcess | undefined): process is LifelineProcess {
  return process !== undefined && process.child.exitCode === null && process.child.signalCode === null;
}

/**
 * SIGKILLs a worker that holds an answer mid-stream: waits until the log names one of `workers`
 * (by `LIFELINE_WORKER_NAME`) in the newest `started` entry of an unfinished answer with a delta
 * after it, and kills that process. Undefined when the signal aborts first.
 */
export async function killWorkerMidAnswer(
  workers: ReadonlyMap<string, LifelineProcess>,
  options: Omit<AimOptions, "worker">,
): Promise<AimedFault | undefined> {
  const answer = await findAnswerInFlight({ ...options, worker: (name) => isRunning(workers.get(name)) });
  const victim = answer && workers.get(answer.worker);
  if (!answer || !victim) return undefined;
  const at = Date.now();
  await victim.kill();
  return { kind: "worker", target: answer.worker, answer, at };
}

/**
 * Injects `fault` (a gateway SIGKILLed, a Redis primary killed …) once some answer is mid-stream
 * on a worker that `options.worker` accepts (any, when not given). Undefined when the signal
 * aborts first.
 */
export async function faultMidAnswer(
  kind: string,
  target: string,
  fault: () => Promise<unknown>,
  options: Omit<AimOptions, "worker"> & { readonly worker?: AimOptions["worker"] },
): Promise<AimedFault | undefined> {
  const answer = await findAnswerInFlight({ worker: () => true, ...options });
  if (!answer) return undefined;
  const at = Date.now();
  await fault();
  return { kind, target, answer, at };
}

/**
 * Whether the fault hit its answer in flight, judged from the answer's timeline once it ended: a
 * killed worker's attempt was taken over by another; any other fault came before the terminal
 * entry.
 */
export function hitInFlight(timeline: Timeline, fault: AimedFault): boolean {
  if (timeline.id !== fault.answer.id) throw new RangeError(`the timeline of ${timeline.id} is not that of ${fault.answer.id}`);
  if (fault.kind === "worker") {
    const attempts = timeline.attempts.filter((a) => a.worker === fault.target && a.fence === fault.answer.fence);
    return attempts[attempts.length - 1]?.endedBy === "takeover";
  }
  return timeline.durationMs !== undefined && Date.parse(timeline.updatedAt) > fault.at;
}
