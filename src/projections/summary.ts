import type { Entry, Usage } from "../core/entries.ts";
import type { GenerationStatus } from "../core/fold.ts";
import { timelineOf } from "./timeline.ts";

/** One answer as the read models keep it (decision 037): what `/v1/ops` answers with. */
export interface Summary {
  readonly id: string;
  readonly status: GenerationStatus;
  /** The model the request asked for. */
  readonly model: string;
  readonly tenant?: string;
  /** Model calls started (`started` entries). */
  readonly attempts: number;
  readonly retries: number;
  readonly takeovers: number;
  readonly rewinds: number;
  /** The worker of the last attempt. */
  readonly worker?: string;
  readonly createdAt: string;
  readonly endedAt?: string;
  /** From `created` to the first `delta`: what the caller waited for its first token. */
  readonly firstTokenMs?: number;
  /** From `created` to the terminal entry. */
  readonly totalMs?: number;
  readonly usage?: Usage;
  readonly finishReason?: string;
  readonly errorCode?: string;
  /** The last entry of the log this summary has applied. */
  readonly lastOffset: number;
}

/** One worker's part in one answer. */
export interface WorkerPart {
  readonly worker: string;
  /** Attempts it started. */
  readonly attempts: number;
  /** Attempts it started by taking the job over from another worker. */
  readonly takeovers: number;
  /** 1 when its attempt ended the answer (completed or failed), else 0. */
  readonly finished: number;
  /** The time of the last entry of its attempts. */
  readonly lastSeenAt: string;
}

/** A summary with what the counts across answers are built from. */
export interface ProjectedGeneration {
  readonly summary: Summary;
  /**
   * The time of the last entry applied, or after a `retrying` the end of the wait it announced (a
   * `Retry-After`, an open breaker's cooldown): an answer still open with an older one is stuck.
   */
  readonly lastEntryAt: string;
  /** The model route of the last attempt (the configured model that served it), `""` before any. */
  readonly provider: string;
  /** Model calls refused because every breaker of the model was open (`(circuit open)` in a retry or failure). */
  readonly breakerOpens: number;
  readonly workers: readonly WorkerPart[];
}

/** The words the worker writes when no breaker let a call through (src/worker/answer-run.ts). */
const CIRCUIT_OPEN = "(circuit open)";

/**
 * Folds a whole log (from offset 1) into what the read models keep of it. A pure function of the
 * entries: applying the same log twice gives the same value, which is what makes the read models
 * idempotent and a rebuild identical.
 */
export function projectGeneration(id: string, entries: readonly Entry[]): ProjectedGeneration {
  const timeline = timelineOf(id, entries);
  const created = entries[0]?.type === "created" ? entries[0] : undefined;
  const firstDelta = entries.find((e) => e.type === "delta");
  const last = entries.at(-1);
  const ended = timeline.durationMs !== undefined;
  const lastAttempt = timeline.attempts.at(-1);
  const parts = new Map<string, { attempts: number; takeovers: number; finished: number; lastSeenAt: string }>();
  timeline.attempts.forEach((attempt, i) => {
    const part = parts.get(attempt.worker) ?? { attempts: 0, takeovers: 0, finished: 0, lastSeenAt: attempt.startedAt };
    part.attempts += 1;
    if (i > 0 && timeline.attempts[i - 1]!.endedBy === "takeover") part.takeovers += 1;
    if (attempt.endedBy === "completed" || attempt.endedBy === "failed") part.finished += 1;
    const seen = attempt.endedBy === "takeover" ? attempt.startedAt : (attempt.endedAt ?? attempt.startedAt);
    if (seen > part.lastSeenAt) part.lastSeenAt = seen;
    parts.set(attempt.worker, part);
  });
  let breakerOpens = 0;
  for (const entry of entries) {
    if ((entry.type === "retrying" || entry.type === "failed") && entry.error.message.includes(CIRCUIT_OPEN)) breakerOpens += 1;
  }
  const summary: Summary = {
    id,
    status: timeline.status,
    model: timeline.requestedModel,
    ...(created?.tenant === undefined ? {} : { tenant: created.tenant }),
    attempts: timeline.attempts.length,
    retries: timeline.retries,
    takeovers: timeline.takeovers,
    rewinds: timeline.rewinds,
    ...(lastAttempt ? { worker: lastAttempt.worker } : {}),
    createdAt: timeline.createdAt,
    ...(ended ? { endedAt: timeline.updatedAt, totalMs: timeline.durationMs } : {}),
    ...(firstDelta ? { firstTokenMs: Date.parse(firstDelta.at) - Date.parse(timeline.createdAt) } : {}),
    ...(timeline.usage ? { usage: timeline.usage } : {}),
    ...(timeline.finishReason === undefined ? {} : { finishReason: timeline.finishReason }),
    ...(timeline.error ? { errorCode: timeline.error.code } : {}),
    lastOffset: timeline.lastOffset,
  };
  return {
    summary,
    lastEntryAt: last === undefined ? timeline.createdAt : last.type === "retrying" ? quietUntil(last.at, last.delayMs) : last.at,
    provider: lastAttempt?.model ?? "",
    breakerOpens,
    workers: [...parts].map(([worker, part]) => ({ worker, ...part })).sort((a, b) => (a.worker < b.worker ? -1 : 1)),
  };
}

/** `at` plus `delayMs`, as an ISO time. */
function quietUntil(at: string, delayMs: number): string {
  return delayMs > 0 ? new Date(Date.parse(at) + delayMs).toISOString() : at;
}
