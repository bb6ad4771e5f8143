import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { ChildChannel } from "./child-channel.ts";
import type { LoadResult } from "./protocol.ts";

/**
 * How the clients of a phase ask for an answer: one `GET <path>?content=…` that starts and
 * streams it (the direct pipe, the XADD+PUBLISH floor), or Lifeline's `POST /v1/generations`
 * followed by `GET /v1/generations/:id/events` (the embedded node, a Lifeline node over Redis).
 */
export type AskStyle = { readonly kind: "get"; readonly path: string } | { readonly kind: "post-then-get" };

/**
 * One phase of load: `concurrency` clients arriving spread over `rampMs`, each asking `rounds`
 * answers (one unless given) one after another.
 */
export interface FleetPlan {
  readonly baseUrl: string;
  readonly ask: AskStyle;
  /** Makes every request of the phase unique, so emits can be matched to clients by content. */
  readonly tag: string;
  readonly concurrency: number;
  readonly maxTokens: number;
  /** Client i starts `i * rampMs / concurrency` after the phase starts (users do not all arrive in one instant). */
  readonly rampMs: number;
  /** Answers each client asks in turn (default 1): more latency samples at a low level. */
  readonly rounds?: number;
}

export type ToFleet =
  { readonly type: "clock"; readonly seq: number } | { readonly type: "run"; readonly plan: FleetPlan } | { readonly type: "exit" };

export type FromFleet =
  | { readonly type: "ready"; readonly fdLimit: string }
  | { readonly type: "clock"; readonly seq: number; readonly now: number }
  | { readonly type: "result"; readonly result: LoadResult }
  | { readonly type: "error"; readonly message: string };

/**
 * The orchestrator's handle on the client fleet, a child process (`client-fleet-child.ts`) that
 * plays every client over real HTTP on loopback, so clients do not share the servers' event loop.
 */
export class ClientFleet {
  readonly #channel: ChildChannel<ToFleet, FromFleet>;
  /** The child's `ulimit -n` as it reported it. */
  fdLimit = "unknown";

  private constructor(channel: ChildChannel<ToFleet, FromFleet>) {
    this.#channel = channel;
  }

  /** Forks the child (it inherits `--import tsx`) and waits until it listens. */
  static async start(): Promise<ClientFleet> {
    const child = fork(fileURLToPath(new URL("./client-fleet-child.ts", import.meta.url)), [], { stdio: "inherit" });
    const fleet = new ClientFleet(new ChildChannel(child, "client fleet"));
    const ready = await fleet.#channel.next((m) => m.type === "ready");
    if (ready.type === "ready") fleet.fdLimit = ready.fdLimit;
    return fleet;
  }

  get pid(): number {
    return this.#channel.pid;
  }

  /** The child's clock minus ours, from the IPC round trip with the smallest delay (as NTP does). */
  clockOffset(samples = 25): Promise<{ offsetMs: number; roundTripMs: number }> {
    return this.#channel.clockOffset((seq) => ({ type: "clock", seq }), samples);
  }

  async run(plan: FleetPlan): Promise<LoadResult> {
    const reply = await this.#channel.ask({ type: "run", plan }, (m) => m.type === "result" || m.type === "error");
    if (reply.type === "error") throw new Error(`client fleet failed: ${reply.message}`);
    if (reply.type !== "result") throw new Error(`unexpected reply ${reply.type}`);
    return reply.result;
  }

  stop(): Promise<void> {
    return this.#channel.stop({ type: "exit" });
  }
}
