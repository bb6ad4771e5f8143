import type { ServerResponse } from "node:http";
import type { Entry } from "../../../core/entries.ts";
import { LifelineError } from "../../../core/errors.ts";
import type { EncodedEntry } from "../../encoded-entry.ts";
import { Follow, type FollowEnd, type FollowSink } from "../../follow.ts";
import { START } from "../../log-follower.ts";
import type { DoorOptions } from "../door-options.ts";

/**
 * Waits for a generation's terminal entry and gives its whole log: what the calls that answer once
 * (`stream: false`) are made of. It follows the log like every stream does (waiting in the shared
 * tail, a `reset` starting it again from offset 1), so it polls nothing. `undefined` when the
 * client left first (the answer goes on: leaving never cancels it); `shutting_down` when the
 * gateway stops (a retry with the same `Idempotency-Key` waits for the same answer elsewhere).
 */
export async function wholeLog(options: DoorOptions, id: string, client: ServerResponse): Promise<Entry[] | undefined> {
  const collector = new LogCollector();
  const follow = new Follow(options.tails, id, START, collector);
  const left = (): void => collector.leave(follow);
  client.on("close", left);
  options.shutdown.addEventListener("abort", collector, { once: true });
  try {
    const outcome = await collector.run(follow);
    if (collector.clientLeft) return undefined;
    switch (outcome.kind) {
      case "ended":
        return collector.entries;
      case "gone":
        throw new LifelineError("generation_not_found");
      case "failed":
        throw outcome.error;
      case "stopped":
        throw new LifelineError("shutting_down");
    }
  } finally {
    client.off("close", left);
    options.shutdown.removeEventListener("abort", collector);
  }
}

class LogCollector implements FollowSink {
  readonly transport = "door";
  entries: Entry[] = [];
  clientLeft = false;
  #follow: Follow | undefined;
  #ended: ((outcome: FollowEnd) => void) | undefined;

  run(follow: Follow): Promise<FollowEnd> {
    this.#follow = follow;
    const over = new Promise<FollowEnd>((resolve) => (this.#ended = resolve));
    follow.start();
    return over;
  }

  leave(follow: Follow): void {
    this.clientLeft = true;
    follow.close();
    this.#ended?.({ kind: "stopped" });
  }

  /** The gateway shuts down (as the listener of its signal). */
  handleEvent(): void {
    this.#follow?.stop();
  }

  entry(frame: EncodedEntry): boolean {
    this.entries.push(frame.entry);
    return true;
  }

  reset(): boolean {
    this.entries = [];
    return true;
  }

  whenDrained(resume: () => void): void {
    queueMicrotask(resume);
  }

  flush(): void {
    // The answer is written once, at the end.
  }

  end(outcome: FollowEnd): void {
    this.#ended?.(outcome);
  }
}
