import type { AnswerFollow, FollowState } from "../../../src/client/index.ts";

/** What the application saw of one follow. */
export interface FollowRecord {
  /** Offsets yielded to the application, in order; a reset is a 0. */
  readonly offsets: number[];
  readonly states: FollowState[];
  readonly text: string;
  readonly status: string;
}

/** Drives a follow through its async iterator, the way an application would. */
export async function record(follow: AnswerFollow): Promise<FollowRecord> {
  const offsets: number[] = [];
  const states: FollowState[] = [];
  for await (const event of follow) {
    if (event.type === "entry") offsets.push(event.entry.offset);
    else if (event.type === "reset") offsets.push(0);
    else states.push(event.state);
  }
  const final = await follow.done;
  return { offsets, states, text: final.text, status: final.status };
}

export { simAsk } from "../../support/sim-answer.ts";

/** 1, 2, 3 … n: every offset once, in order. */
export function oneToN(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i + 1);
}
