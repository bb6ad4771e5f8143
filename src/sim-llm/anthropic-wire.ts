import { z } from "zod";
import type { ChatMessage } from "../core/entries.ts";
import { encodeSseFrame } from "../core/wire.ts";
import { answerUsage, contentText, describeIssues, splitPrefill, type WireDialect } from "./dialect.ts";

const textBlocks = z.array(z.looseObject({ type: z.literal("text"), text: z.string() }));

/**
 * The Messages body the simulator understands; other fields are ignored. `seed` is not Anthropic's:
 * it is accepted here so that a test can vary the simulator's answer.
 */
const MessagesBody = z.looseObject({
  model: z.string().min(1),
  max_tokens: z.number().int().min(1).max(100_000),
  messages: z.array(z.looseObject({ role: z.enum(["user", "assistant"]), content: z.union([z.string(), textBlocks]) })).min(1),
  system: z.union([z.string(), textBlocks]).optional(),
  stream: z.boolean().optional(),
  temperature: z.number().min(0).max(1).optional(),
  seed: z
    .number()
    .int()
    .min(0)
    .max(2 ** 32 - 1)
    .optional(),
});

/** `error.type` of the Anthropic error body per status. */
function errorType(status: number): string {
  const types: Record<number, string> = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
  };
  return types[status] ?? (status >= 500 ? "api_error" : "invalid_request_error");
}

function event(name: string, data: Record<string, unknown>): string {
  return encodeSseFrame({ event: name, data: JSON.stringify({ type: name, ...data }) });
}

/** Anthropic Messages: `POST /v1/messages`, named events from `message_start` to `message_stop`. */
export const anthropicDialect: WireDialect = {
  name: "anthropic",
  requestIdHeader: "request-id",
  answerId: (n) => `msg_sim${n}`,

  parse(body) {
    const parsed = MessagesBody.safeParse(body);
    if (!parsed.success) return { ok: false, message: describeIssues(parsed.error.issues) };
    const b = parsed.data;
    const system: ChatMessage[] = b.system === undefined ? [] : [{ role: "system", content: contentText(b.system) }];
    const messages: ChatMessage[] = [...system, ...b.messages.map((m) => ({ role: m.role, content: contentText(m.content) }))];
    const { messages: conversation, prefix } = splitPrefill(messages);
    return {
      ok: true,
      request: {
        model: b.model,
        messages: conversation,
        prefix,
        seed: b.seed,
        maxTokens: b.max_tokens,
        stream: b.stream ?? false,
        includeUsage: false,
      },
    };
  },

  errorBody(status, message) {
    return { type: "error", error: { type: errorType(status), message } };
  },

  streamStart(answer) {
    const message = {
      id: answer.id,
      type: "message",
      role: "assistant",
      content: [],
      model: answer.request.model,
      stop_reason: null,
      stop_sequence: null,
      usage: { input_tokens: answerUsage(answer.request, 0).promptTokens, output_tokens: 0 },
    };
    return (
      event("message_start", { message }) +
      event("content_block_start", { index: 0, content_block: { type: "text", text: "" } }) +
      event("ping", {})
    );
  },

  streamToken(_answer, text) {
    return event("content_block_delta", { index: 0, delta: { type: "text_delta", text } });
  },

  streamFinish(_answer, usage) {
    return (
      event("content_block_stop", { index: 0 }) +
      event("message_delta", {
        delta: { stop_reason: "end_turn", stop_sequence: null },
        usage: { output_tokens: usage.completionTokens },
      }) +
      event("message_stop", {})
    );
  },

  complete(answer, text, usage) {
    return {
      id: answer.id,
      type: "message",
      role: "assistant",
      content: [{ type: "text", text }],
      model: answer.request.model,
      stop_reason: "end_turn",
      stop_sequence: null,
      usage: { input_tokens: usage.promptTokens, output_tokens: usage.completionTokens },
    };
  },
};
