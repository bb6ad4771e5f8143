import type { AnswerFollow, FinalStatus, FollowEvent } from "../client/index.ts";

/** What reached an application that followed one answer through the client SDK. */
export interface CheckedFollow {
  readonly text: string;
  readonly status: FinalStatus;
  /** Offsets applied, in order; a `reset` is a 0, after which they start again at 1. */
  readonly applied: readonly number[];
  /** Connections that resumed after a drop. */
  readonly resumes: number;
  readonly resets: number;
  /** Set when an offset reached the application twice, or out of order. */
  readonly problem: string | undefined;
}

export interface CheckOptions {
  /** The follow resumes after this offset (it was given the cursor of that entry). @defaultValue 0 */
  readonly afterOffset?: number;
  /** Sees every event once it is checked (to inject a fault at a chosen point, say). */
  readonly onEvent?: (event: FollowEvent) => void;
}

/**
 * Follows one answer to its end the way an application does, and checks what reached it: each
 * run of entries between resets is 1, 2, 3 … (after `afterOffset`) with no gap and no repeat.
 */
export async function checkFollow(follow: AnswerFollow, options: CheckOptions = {}): Promise<CheckedFollow> {
  const applied: number[] = [];
  let expected = (options.afterOffset ?? 0) + 1;
  let problem: string | undefined;
  let resumes = 0;
  let resets = 0;
  for await (const event of follow) {
    if (event.type === "reset") {
      resets += 1;
      applied.push(0);
      expected = 1;
    } else if (event.type === "state" && event.state === "resumed") {
      resumes += 1;
    } else if (event.type === "entry") {
      const offset = event.entry.offset;
      if (offset !== expected) problem ??= `offset ${offset} reached the application where ${expected} was due`;
      applied.push(offset);
      expected = offset + 1;
    }
    options.onEvent?.(event);
  }
  const final = await follow.done;
  return { text: final.text, status: final.status, applied, resumes, resets, problem };
}

/** Each run of applied offsets between resets is 1, 2, 3 …: no gap and no repeat. */
export function segmentsAreContiguous(applied: readonly number[]): boolean {
  let expected = 1;
  for (const offset of applied) {
    if (offset === 0) expected = 1;
    else if (offset !== expected++) return false;
  }
  return true;
}
