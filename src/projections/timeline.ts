import { isTerminal, type Entry, type ErrorInfo, type Usage } from "../core/entries.ts";
import { TextFold, foldGeneration, type GenerationStatus } from "../core/fold.ts";

/**
 * How one model call went: from its `started` entry to whatever ended it. `endedBy` is what the
 * log says happened next — `retrying` (the call failed and another follows), `takeover` (another
 * worker started a new attempt without a word from this one: its worker died or lost its lease),
 * the terminal type, or `running` while it is the last one and the log is open.
 */
export interface AttemptView {
  /** 1, 2, 3 … in the order of the log. */
  readonly index: number;
  /** The fencing token it wrote with: a new lease (a takeover) raises it, a retry keeps it. */
  readonly fence: number;
  readonly worker: string;
  readonly model: string;
  readonly startedAt: string;
  readonly startOffset: number;
  /** Time from `started` to its first `delta`; absent when it wrote none. */
  readonly firstDeltaMs?: number;
  readonly deltas: number;
  /** Characters its deltas added (before any rewind). */
  readonly chars: number;
  /** The answer's length when it started: what it continued from (0 after a rewind to the start). */
  readonly continuedFrom: number;
  readonly endedBy: "retrying" | "takeover" | "completed" | "failed" | "cancelled" | "running";
  readonly endedAt?: string;
  readonly error?: ErrorInfo;
  /** The pause a `retrying` entry announced before the next call. */
  readonly retryDelayMs?: number;
}

/** One line of the condensed log: a run of consecutive deltas of one attempt is one step. */
export interface TimelineStep {
  readonly fromOffset: number;
  readonly toOffset: number;
  readonly at: string;
  readonly type: Entry["type"];
  readonly fence: number;
  /** What happened, in words. */
  readonly summary: string;
  /** The answer's length after this step. */
  readonly textLength: number;
}

/**
 * A generation's timeline: a read model built from its log alone, so it can be rebuilt at any
 * time by replaying the log, up to any offset (`until`), to see the answer as it stood then.
 */
export interface Timeline {
  readonly id: string;
  readonly status: GenerationStatus;
  readonly requestedModel: string;
  readonly createdAt: string;
  /** The last entry replayed. */
  readonly lastOffset: number;
  readonly updatedAt: string;
  /** From `created` to the terminal entry; absent while the log is open. */
  readonly durationMs?: number;
  readonly attempts: readonly AttemptView[];
  /** Model calls that failed and were retried (`retrying` entries). */
  readonly retries: number;
  /** Attempts that another worker took over. */
  readonly takeovers: number;
  readonly rewinds: number;
  readonly steps: readonly TimelineStep[];
  readonly text: string;
  readonly finishReason?: string;
  readonly usage?: Usage;
  readonly error?: ErrorInfo;
}

/** Replays `entries` (a whole log, from offset 1) up to offset `until` (all when absent) into a timeline. */
export function timelineOf(id: string, entries: readonly Entry[], until?: number): Timeline {
  const replayed = until === undefined ? entries : entries.filter((e) => e.offset <= until);
  const view = foldGeneration(id, replayed);
  const fold = new TextFold();
  const attempts: MutableAttempt[] = [];
  const steps: TimelineStep[] = [];
  let retries = 0;
  let takeovers = 0;
  let rewinds = 0;
  let open: MutableAttempt | undefined;
  let run: { from: Entry; to: Entry; chars: number } | undefined;

  const flushRun = (): void => {
    if (!run) return;
    const count = run.to.offset - run.from.offset + 1;
    const summary = `${count} ${count === 1 ? "delta" : "deltas"}, +${run.chars} chars`;
    steps.push({
      fromOffset: run.from.offset,
      toOffset: run.to.offset,
      at: run.from.at,
      type: "delta",
      fence: run.from.attempt,
      summary,
      textLength: fold.text.length,
    });
    run = undefined;
  };
  const close = (endedBy: AttemptView["endedBy"], entry: Entry, extra: Partial<MutableAttempt> = {}): void => {
    if (!open) return;
    Object.assign(open, { endedBy, endedAt: entry.at }, extra);
    open = undefined;
  };

  for (const entry of replayed) {
    const before = fold.text.length;
    fold.apply(entry);
    if (entry.type === "delta") {
      if (open) {
        open.deltas += 1;
        open.chars += entry.text.length;
        open.firstDeltaMs ??= ms(open.startedAt, entry.at);
      }
      if (run && run.to.offset === entry.offset - 1 && run.from.attempt === entry.attempt) {
        run.to = entry;
        run.chars += entry.text.length;
      } else {
        flushRun();
        run = { from: entry, to: entry, chars: entry.text.length };
      }
      continue;
    }
    flushRun();
    let summary: string;
    switch (entry.type) {
      case "created":
        summary = `accepted: model ${entry.request.model}, ${entry.request.messages.length} ${entry.request.messages.length === 1 ? "message" : "messages"}${entry.request.max_tokens === undefined ? "" : `, max_tokens ${entry.request.max_tokens}`}`;
        break;
      case "started": {
        const previous = attempts[attempts.length - 1];
        // A higher fence than the last call's is a new lease: its worker died, lost its lease or
        // handed the job back — while calling the model, or while waiting to retry.
        const takenOver = previous !== undefined && entry.attempt > previous.fence;
        if (takenOver) {
          takeovers += 1;
          close("takeover", entry);
        }
        open = {
          index: attempts.length + 1,
          fence: entry.attempt,
          worker: entry.worker,
          model: entry.model,
          startedAt: entry.at,
          startOffset: entry.offset,
          deltas: 0,
          chars: 0,
          continuedFrom: fold.text.length,
          endedBy: "running",
        };
        attempts.push(open);
        const how =
          takenOver && previous
            ? `took over from ${previous.worker} (fence ${previous.fence} → ${entry.attempt})`
            : attempts.length === 1
              ? "first call"
              : "next call";
        summary = `${how}: ${entry.model} on ${entry.worker}, continuing from ${fold.text.length} chars`;
        break;
      }
      case "retrying":
        retries += 1;
        close("retrying", entry, { error: entry.error, retryDelayMs: entry.delayMs });
        summary = `call failed (${entry.error.code}: ${entry.error.message}); next in ${entry.delayMs} ms`;
        break;
      case "rewind":
        rewinds += 1;
        summary = `rewound to entry ${entry.toOffset}: ${before} → ${fold.text.length} chars`;
        break;
      case "completed":
        close("completed", entry);
        summary = `completed (${entry.finishReason}), ${entry.usage.promptTokens} prompt + ${entry.usage.completionTokens} completion tokens`;
        break;
      case "failed":
        close("failed", entry, { error: entry.error });
        summary = `failed (${entry.error.code}: ${entry.error.message})`;
        break;
      case "cancelled":
        close("cancelled", entry);
        summary = "cancelled";
        break;
    }
    steps.push({
      fromOffset: entry.offset,
      toOffset: entry.offset,
      at: entry.at,
      type: entry.type,
      fence: entry.attempt,
      summary,
      textLength: fold.text.length,
    });
  }
  flushRun();

  const last = replayed[replayed.length - 1];
  const ended = last !== undefined && isTerminal(last);
  return {
    id,
    status: view.status,
    requestedModel: view.request.model,
    createdAt: view.createdAt,
    lastOffset: view.lastOffset,
    updatedAt: view.updatedAt,
    ...(ended ? { durationMs: ms(view.createdAt, view.updatedAt) } : {}),
    attempts,
    retries,
    takeovers,
    rewinds,
    steps,
    text: view.text,
    ...(view.finishReason === undefined ? {} : { finishReason: view.finishReason }),
    ...(view.usage === undefined ? {} : { usage: view.usage }),
    ...(view.error === undefined ? {} : { error: view.error }),
  };
}

type MutableAttempt = { -readonly [K in keyof AttemptView]: AttemptView[K] };

function ms(from: string, to: string): number {
  return Date.parse(to) - Date.parse(from);
}
