import type { Entry } from "../../../core/entries.ts";
import { ERROR_CODES } from "../../../core/errors.ts";
import type { LogFormat } from "../door-stream.ts";
import { SSE_HEADERS } from "../../sse-streams.ts";
import { encodeUiChunk, errorTextOf, UI_STREAM_DONE, UiChunkDerivation } from "./ui-chunks.ts";

/** The headers of a UI message stream: the gateway's SSE headers and the one the SDK's `createUIMessageStreamResponse` sets. */
export const UI_STREAM_HEADERS = { ...SSE_HEADERS, "x-vercel-ai-ui-message-stream": "v1" } as const;

/**
 * The UI message stream as a door stream's format: each entry becomes the chunks
 * {@link UiChunkDerivation} derives from it, framed as the SDK's `JsonToSseTransformStream` frames
 * them, and `data: [DONE]` follows the answer's last chunk (its end, or an `answer_diverged` error).
 *
 * A stream that stops before the answer's end (the gateway shuts down, the engine fails, the log
 * expired) ends with an `error` chunk whose text begins with that code, never with an end that
 * would look like the answer's: the answer goes on, and the client resumes it on another gateway.
 */
export class UiMessageFormat implements LogFormat {
  readonly #chunks: UiChunkDerivation;

  constructor(generationId: string) {
    this.#chunks = new UiChunkDerivation(generationId);
  }

  get over(): boolean {
    return this.#chunks.over;
  }

  apply(entry: Entry): string {
    let frames = "";
    for (const chunk of this.#chunks.apply(entry)) frames += encodeUiChunk(chunk);
    return this.#chunks.over ? frames + UI_STREAM_DONE : frames;
  }

  reset(): void {
    this.#chunks.reset();
  }

  interrupted(code: "shutting_down" | "engine_unavailable" | "generation_not_found"): string {
    return encodeUiChunk({ type: "error", errorText: errorTextOf(code, ERROR_CODES[code].message) }) + UI_STREAM_DONE;
  }
}
