import type { EncodedEntry } from "../../encoded-entry.ts";
import type { Follow, FollowEnd, FollowSink } from "../../follow.ts";
import { SSE_HEADERS, type SseOwner, type SseStream } from "../../sse-streams.ts";
import { encodeUiChunk, errorTextOf, UI_STREAM_DONE, UiChunkDerivation } from "./ui-chunks.ts";

/** The headers of a UI message stream: the gateway's SSE headers and the one the SDK's `createUIMessageStreamResponse` sets. */
export const UI_STREAM_HEADERS = { ...SSE_HEADERS, "x-vercel-ai-ui-message-stream": "v1" } as const;

/**
 * One open UI message stream: the sink a {@link Follow} of the answer's log writes to. Each entry
 * becomes the chunks {@link UiChunkDerivation} derives from it, framed as the SDK frames them.
 *
 * The stream ends with `data: [DONE]` once the answer's last chunk is sent (its end, or an
 * `answer_diverged` error). When the client goes, only the stream ends: the answer goes on and
 * can be resumed. When the gateway shuts down or the engine fails, the response ends without
 * `[DONE]`, as a cut connection does, so the client resumes on another gateway.
 */
export class UiMessageStream implements FollowSink, SseOwner {
  follow: Follow | undefined;
  readonly #sse: SseStream;
  readonly #chunks: UiChunkDerivation;

  constructor(sse: SseStream, generationId: string) {
    this.#sse = sse;
    this.#chunks = new UiChunkDerivation(generationId);
    sse.owner = this;
  }

  entry(frame: EncodedEntry): boolean {
    const chunks = this.#chunks.apply(frame.entry);
    let room = true;
    for (const chunk of chunks) room = this.#sse.write(encodeUiChunk(chunk));
    // A divergence ends the answer here, before its terminal entry: nothing more is sent.
    if (this.#chunks.over && !frame.terminal) this.follow?.stop();
    return room;
  }

  reset(): boolean {
    this.#chunks.reset();
    return true;
  }

  flush(): void {
    this.#sse.flush();
  }

  whenDrained(resume: () => void): void {
    this.#sse.whenDrained(resume);
  }

  end(outcome: FollowEnd): void {
    switch (outcome.kind) {
      case "ended":
      case "stopped":
        this.#sse.write(UI_STREAM_DONE);
        return this.#sse.end();
      case "gone":
        this.#sse.write(encodeUiChunk({ type: "error", errorText: errorTextOf("generation_not_found", "The answer's log has expired.") }));
        this.#sse.write(UI_STREAM_DONE);
        return this.#sse.end();
      case "failed":
        return this.#sse.end(outcome.error);
    }
  }

  finished(): void {
    this.follow?.close();
  }
}
