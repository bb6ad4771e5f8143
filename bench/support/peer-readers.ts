import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { ChildChannel } from "./child-channel.ts";
import type { Percentiles } from "./token-latency.ts";

/** How a reader asks for an answer and follows it: Lifeline's API, or the resumable-stream producer's routes. */
export type ReaderApi = "lifeline" | "resumable-stream";

/** One phase of `bench/peers.ts` as the readers play it. */
export interface ReaderPlan {
  readonly api: ReaderApi;
  readonly baseUrl: string;
  /** Makes every prompt and stream id of the phase unique. */
  readonly tag: string;
  /** The number of the phase's first answer; the others follow it (the closed loop's acks name answers by number). */
  readonly firstAnswer: number;
  readonly answers: number;
  readonly tokensPerAnswer: number;
  /** Reader i starts `i * rampMs / answers` after the phase starts. */
  readonly rampMs: number;
  /** Readers still open this long after the phase started are cut: their answers count as incomplete. */
  readonly deadlineMs: number;
  /** Report tokens received per answer to the bench (the closed loop's acknowledgements). */
  readonly acks: boolean;
  /** The model's clock minus the readers' clock: latency = receipt − emittedAt + this. */
  readonly clockCorrectionMs: number;
}

/** What the readers saw of one phase. Times are the readers' clock, in ms. */
export interface ReaderResult {
  readonly answers: number;
  /** Every token once, in order, and the end of the answer: the only acceptable outcome. */
  readonly exact: number;
  /** Ended (or were cut at the deadline) before their last token or their end, with nothing out of order. */
  readonly incomplete: number;
  /** A gap, repeat or reordering, a token of another answer, a reset, rewind or failure, an HTTP error. */
  readonly broken: number;
  /** Up to 20 broken answers' first problem, then up to 3 incomplete answers. */
  readonly problemSamples: readonly string[];
  /** `retrying` entries seen (Lifeline): an attempt failed and another continued the answer. */
  readonly retries: number;
  readonly tokens: number;
  /** Tokens written before their reader sent its follow request: delivered from a buffer, left out of the latency. */
  readonly catchUpTokens: number;
  /** Model writes a token → its reader has parsed it. */
  readonly latencyMs: Percentiles;
  /**
   * Lifeline only, the same latency in two parts at the time its entry was appended (the entry's
   * `at`, a millisecond wall clock): model writes → appended to the log (the worker, its window),
   * and appended → reader has parsed it (the engine, the gateway, the reader).
   */
  readonly latencySplitMs?: { readonly toLog: Percentiles; readonly fromLog: Percentiles };
  /** The reader's first request → its first token. */
  readonly firstTokenMs: Percentiles;
  /**
   * The first token's wait in two parts: the reader's first request → the answer started (its
   * `POST` answered; a system that admits requests slower than they come keeps them waiting here),
   * and the follow request → the first token (the claim, the model call, the first token's way).
   */
  readonly postMs: Percentiles;
  readonly followToFirstMs: Percentiles;
  /** First request of the phase → last token received. */
  readonly wallMs: number;
  readonly overallTokensPerSecond: number;
  /** Tokens / (first token received → last token received): the fast workloads' throughput. */
  readonly spanTokensPerSecond: number;
  /** Tokens per second while at least 90 % of the most answers streaming at once were streaming. */
  readonly plateauTokensPerSecond: number;
  readonly plateauMs: number;
  readonly peakStreaming: number;
  /** Tokens received in each whole second of the phase. */
  readonly perSecond: readonly number[];
}

export type ToReaders =
  | { readonly type: "clock"; readonly seq: number }
  | { readonly type: "run"; readonly plan: ReaderPlan }
  | { readonly type: "report" }
  | { readonly type: "exit" };

export type FromReaders =
  | { readonly type: "ready" }
  | { readonly type: "clock"; readonly seq: number; readonly now: number }
  /** Flattened pairs [answer, tokens received so far, …]. */
  | { readonly type: "acks"; readonly acks: number[] }
  /** Every reader of the run ended; the analysis is not done yet (so its CPU is not the phase's). */
  | { readonly type: "finished" }
  | { readonly type: "result"; readonly result: ReaderResult }
  | { readonly type: "error"; readonly message: string };

/** The bench's handle on the reader process (`peer-readers-child.ts`). */
export class PeerReaders {
  readonly #channel: ChildChannel<ToReaders, FromReaders>;
  /** Called with every batch of acknowledgements while a closed-loop phase runs. */
  onAcks: (acks: number[]) => void = () => undefined;

  private constructor(child: ChildProcess) {
    this.#channel = new ChildChannel(child, "the reader process", (m) => {
      if (m.type !== "acks") return false;
      this.onAcks(m.acks);
      return true;
    });
  }

  /** Forks the reader process with the given Node arguments and environment (the loop probe's). */
  static async start(execArgv: string[], env: NodeJS.ProcessEnv): Promise<PeerReaders> {
    const child = fork(fileURLToPath(new URL("./peer-readers-child.ts", import.meta.url)), [], { execArgv, env, stdio: "inherit" });
    const readers = new PeerReaders(child);
    await readers.#channel.next((m) => m.type === "ready");
    return readers;
  }

  get pid(): number {
    return this.#channel.pid;
  }

  /** The readers' clock minus ours, from the IPC round trip with the smallest delay. */
  clockOffset(samples = 25): Promise<{ offsetMs: number; roundTripMs: number }> {
    return this.#channel.clockOffset((seq) => ({ type: "clock", seq }), samples);
  }

  /** Runs a phase; resolves when every reader ended. */
  async run(plan: ReaderPlan): Promise<void> {
    const reply = await this.#channel.ask({ type: "run", plan }, (m) => m.type === "finished" || m.type === "error");
    if (reply.type === "error") throw new Error(`the readers failed: ${reply.message}`);
  }

  /** The analysis of the phase that ran last. */
  async report(): Promise<ReaderResult> {
    const reply = await this.#channel.ask({ type: "report" }, (m) => m.type === "result" || m.type === "error");
    if (reply.type !== "result") throw new Error(`the readers failed: ${reply.type === "error" ? reply.message : reply.type}`);
    // IPC carries JSON: percentiles of no samples (NaN) arrive as null.
    const revive = (p: Percentiles): Percentiles => ({
      p50: p.p50 ?? Number.NaN,
      p95: p.p95 ?? Number.NaN,
      p99: p.p99 ?? Number.NaN,
      max: p.max ?? Number.NaN,
      samples: p.samples,
    });
    const { latencyMs, firstTokenMs, postMs, followToFirstMs } = reply.result;
    return {
      ...reply.result,
      latencyMs: revive(latencyMs),
      firstTokenMs: revive(firstTokenMs),
      postMs: revive(postMs),
      followToFirstMs: revive(followToFirstMs),
    };
  }

  stop(): Promise<void> {
    return this.#channel.stop({ type: "exit" });
  }
}
