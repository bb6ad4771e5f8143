import type { Entry } from "../../../core/entries.ts";
import { ERROR_CODES } from "../../../core/errors.ts";
import { encodeSseFrame } from "../../../core/wire.ts";
import type { LogFormat } from "../door-stream.ts";
import { ResponseEvents, eventAfter, responseEventFrame } from "./response-events.ts";

/**
 * A response's event stream from after `startingAfter` (-1: from `response.created`): the events
 * of {@link ResponseEvents} a client that has seen everything up to that number has not. The same
 * number filters the events a `reset` makes the log give again.
 */
export class ResponseFormat implements LogFormat {
  readonly #id: string;
  readonly #events: ResponseEvents;
  #after: number;
  #interrupted = false;

  constructor(id: string, startingAfter: number) {
    this.#id = id;
    this.#events = new ResponseEvents(id);
    this.#after = startingAfter;
  }

  get over(): boolean {
    return this.#interrupted || this.#events.over;
  }

  apply(entry: Entry): string {
    let frames = "";
    for (const event of this.#events.apply(entry)) {
      const unseen = eventAfter(event, this.#after);
      if (!unseen) continue;
      frames += responseEventFrame(unseen);
      this.#after = unseen.sequence;
    }
    return frames;
  }

  reset(): void {
    this.#events.reset();
  }

  /**
   * The stream stops before the response's end. An `error` event whose `error` names the code: the
   * official client throws it, and resumes with `starting_after` set to the last number it got.
   */
  interrupted(code: "shutting_down" | "engine_unavailable" | "generation_not_found"): string {
    this.#interrupted = true;
    const onward = code === "generation_not_found" ? "" : ` The response goes on: resume ${this.#id} with starting_after=${this.#after}.`;
    const message = `${ERROR_CODES[code].message}${onward}`;
    const data = JSON.stringify({ type: "error", code, message, param: null, error: { code, message, type: "server_error" } });
    return encodeSseFrame({ event: "error", data });
  }
}
