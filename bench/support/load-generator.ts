import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { wallNow, type FromLoadGenerator, type LoadPlan, type LoadResult, type ToLoadGenerator } from "./protocol.ts";

/** The orchestrator's handle on the load-generator child process (`sse-load.ts`). */
export class LoadGenerator {
  readonly #child: ChildProcess;
  #listener: ((message: FromLoadGenerator) => void) | undefined;

  private constructor(child: ChildProcess) {
    this.#child = child;
    child.on("message", (message: FromLoadGenerator) => this.#listener?.(message));
  }

  /** Forks the child (it inherits `--import tsx`) and waits until it listens. */
  static async start(): Promise<LoadGenerator> {
    const child = fork(fileURLToPath(new URL("./sse-load.ts", import.meta.url)), [], { stdio: "inherit" });
    const generator = new LoadGenerator(child);
    await generator.#next((m) => m.type === "ready");
    return generator;
  }

  /**
   * The child's clock minus ours, from the IPC round trip with the smallest delay (as NTP does):
   * both processes read the wall clock, which may differ by a little between processes.
   */
  async clockOffset(samples = 25): Promise<{ offsetMs: number; roundTripMs: number }> {
    let best = { offsetMs: 0, roundTripMs: Infinity };
    for (let seq = 0; seq < samples; seq++) {
      const sent = wallNow();
      const reply = await this.#ask({ type: "clock", seq }, (m) => m.type === "clock" && m.seq === seq);
      const back = wallNow();
      if (reply.type === "clock" && back - sent < best.roundTripMs) best = { offsetMs: reply.now - (sent + back) / 2, roundTripMs: back - sent };
    }
    return best;
  }

  async run(plan: LoadPlan): Promise<LoadResult> {
    const reply = await this.#ask({ type: "run", plan }, (m) => m.type === "result" || m.type === "error");
    if (reply.type === "error") throw new Error(`load generator failed: ${reply.message}`);
    if (reply.type !== "result") throw new Error(`unexpected reply ${reply.type}`);
    return reply.result;
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.#child.once("exit", resolve));
    this.#child.send({ type: "exit" } satisfies ToLoadGenerator);
    await exited;
  }

  #ask(message: ToLoadGenerator, match: (m: FromLoadGenerator) => boolean): Promise<FromLoadGenerator> {
    const reply = this.#next(match);
    this.#child.send(message);
    return reply;
  }

  #next(match: (m: FromLoadGenerator) => boolean): Promise<FromLoadGenerator> {
    return new Promise((resolve, reject) => {
      const onExit = (code: number | null): void => reject(new Error(`load generator exited with ${code}`));
      this.#child.once("exit", onExit);
      this.#listener = (message) => {
        if (!match(message)) return;
        this.#listener = undefined;
        this.#child.off("exit", onExit);
        resolve(message);
      };
    });
  }
}
