/**
 * What the OpenAI-compatible door adds to OpenAI's wire: the paths it serves and the header that
 * names the generation behind an answer (docs/protocols/openai.md).
 */

/** The response header naming the generation an answer is: read it again through the native API. */
export const GENERATION_HEADER = "lifeline-generation-id";

export const OPENAI_PATHS = {
  /** `POST`: a chat completion, streamed or not. */
  chatCompletions: "/v1/chat/completions",
  /** `POST`: a response (background, streamed or not). */
  responses: "/v1/responses",
  /** `GET`: a response's state, or its event stream with `?stream=true&starting_after=N`. */
  response: "/v1/responses/:id",
  /** `POST`: cancels a response; idempotent. */
  cancelResponse: "/v1/responses/:id/cancel",
} as const;

/** Headers that tell the official client not to retry: the same request would meet the same answer. */
export const NO_RETRY = { "x-should-retry": "false" } as const;
