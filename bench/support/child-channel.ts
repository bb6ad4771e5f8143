import type { ChildProcess } from "node:child_process";
import { clockOffsetOf } from "./protocol.ts";

interface Message {
  readonly type: string;
}

/** How every bench child answers a clock probe. */
interface ClockReply {
  readonly type: "clock";
  readonly seq: number;
  readonly now: number;
}

function isClockReply(message: Message): message is ClockReply {
  return message.type === "clock" && typeof (message as Partial<ClockReply>).now === "number";
}

/**
 * Request and reply over IPC with a bench's child process (the client fleet, the peer readers):
 * one reply awaited at a time, the child's exit failing it. Messages no one awaits go to
 * `onUnasked` (the readers' acknowledgements).
 */
export class ChildChannel<To extends Message, From extends Message> {
  readonly #child: ChildProcess;
  readonly #name: string;
  #listener: ((message: From) => void) | undefined;

  constructor(child: ChildProcess, name: string, onUnasked: (message: From) => boolean = () => false) {
    this.#child = child;
    this.#name = name;
    child.on("message", (message: From) => {
      if (!onUnasked(message)) this.#listener?.(message);
    });
  }

  get pid(): number {
    return this.#child.pid ?? -1;
  }

  /** Sends `message` and resolves with the first reply that `match` accepts. */
  ask(message: To, match: (m: From) => boolean): Promise<From> {
    const reply = this.next(match);
    this.#child.send(message);
    return reply;
  }

  /** The next message that `match` accepts; rejects if the child exits first. */
  next(match: (m: From) => boolean): Promise<From> {
    return new Promise((resolve, reject) => {
      const onExit = (code: number | null): void => reject(new Error(`${this.#name} exited with ${code}`));
      this.#child.once("exit", onExit);
      this.#listener = (message) => {
        if (!match(message)) return;
        this.#listener = undefined;
        this.#child.off("exit", onExit);
        resolve(message);
      };
    });
  }

  /** The child's clock minus ours, from the IPC round trip with the smallest delay (as NTP does). */
  clockOffset(probe: (seq: number) => To, samples = 25): Promise<{ offsetMs: number; roundTripMs: number }> {
    return clockOffsetOf(async (seq) => {
      const reply = await this.ask(probe(seq), (m) => isClockReply(m) && m.seq === seq);
      return isClockReply(reply) ? reply.now : undefined;
    }, samples);
  }

  /** Asks the child to exit (`goodbye`) and waits until it has. */
  async stop(goodbye: To): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.#child.once("exit", resolve));
    this.#child.send(goodbye);
    await exited;
  }
}
