import { z } from "zod";
import type { ChatMessage, Usage } from "../core/entries.ts";
import { encodeSseFrame } from "../core/wire.ts";
import { SIM_DEFAULT_MAX_TOKENS } from "../llm/sim/sim-text.ts";
import { contentText, describeIssues, splitPrefill, type AnswerContext, type WireDialect } from "./dialect.ts";

const textParts = z.array(z.object({ type: z.literal("text"), text: z.string() }));

/** The chat-completions body the simulator understands; other fields (`user`, `top_p`, …) are ignored. */
const ChatCompletionBody = z.looseObject({
  model: z.string().min(1),
  messages: z
    .array(
      z.looseObject({
        role: z.enum(["system", "developer", "user", "assistant"]),
        content: z.union([z.string(), textParts]),
      }),
    )
    .min(1),
  stream: z.boolean().optional(),
  stream_options: z.looseObject({ include_usage: z.boolean().optional() }).nullish(),
  max_tokens: z.number().int().min(1).max(100_000).nullish(),
  max_completion_tokens: z.number().int().min(1).max(100_000).nullish(),
  seed: z
    .number()
    .int()
    .min(0)
    .max(2 ** 32 - 1)
    .nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  n: z.literal(1).nullish(),
});

/** `type` and `code` of the OpenAI error body per status. */
function errorKind(status: number): { type: string; code: string } {
  if (status === 401) return { type: "invalid_request_error", code: "invalid_api_key" };
  if (status === 403) return { type: "invalid_request_error", code: "permission_denied" };
  if (status === 404) return { type: "invalid_request_error", code: "not_found" };
  if (status === 429) return { type: "requests", code: "rate_limit_exceeded" };
  if (status >= 500) return { type: "server_error", code: status === 503 ? "service_unavailable" : "server_error" };
  return { type: "invalid_request_error", code: "invalid_request" };
}

function chunk(answer: AnswerContext, choices: unknown[], usage?: unknown): string {
  const body: Record<string, unknown> = {
    id: answer.id,
    object: "chat.completion.chunk",
    created: answer.created,
    model: answer.request.model,
    choices,
  };
  // With include_usage every chunk carries `usage`, null until the last one (OpenAI's shape).
  if (answer.request.includeUsage) body.usage = usage ?? null;
  return encodeSseFrame({ data: JSON.stringify(body) });
}

function usageJson(usage: Usage): unknown {
  return {
    prompt_tokens: usage.promptTokens,
    completion_tokens: usage.completionTokens,
    total_tokens: usage.promptTokens + usage.completionTokens,
  };
}

/** OpenAI chat completions: `POST /v1/chat/completions`, `data:` chunks and `data: [DONE]`. */
export const openAiDialect: WireDialect = {
  name: "openai",
  requestIdHeader: "x-request-id",
  answerId: (n) => `chatcmpl-sim${n}`,

  parse(body) {
    const parsed = ChatCompletionBody.safeParse(body);
    if (!parsed.success) return { ok: false, message: describeIssues(parsed.error.issues) };
    const b = parsed.data;
    const messages: ChatMessage[] = b.messages.map((m) => ({
      role: m.role === "developer" ? "system" : m.role,
      content: contentText(m.content),
    }));
    const { messages: conversation, prefix } = splitPrefill(messages);
    return {
      ok: true,
      request: {
        model: b.model,
        messages: conversation,
        prefix,
        seed: b.seed ?? undefined,
        maxTokens: b.max_completion_tokens ?? b.max_tokens ?? SIM_DEFAULT_MAX_TOKENS,
        stream: b.stream ?? false,
        includeUsage: b.stream === true && b.stream_options?.include_usage === true,
      },
    };
  },

  errorBody(status, message) {
    return { error: { message, ...errorKind(status), param: null } };
  },

  streamStart(answer) {
    return chunk(answer, [{ index: 0, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }]);
  },

  streamToken(answer, text) {
    return chunk(answer, [{ index: 0, delta: { content: text }, logprobs: null, finish_reason: null }]);
  },

  streamFinish(answer, usage) {
    let out = chunk(answer, [{ index: 0, delta: {}, logprobs: null, finish_reason: "stop" }]);
    if (answer.request.includeUsage) out += chunk(answer, [], usageJson(usage));
    return `${out}${encodeSseFrame({ data: "[DONE]" })}`;
  },

  complete(answer, text, usage) {
    return {
      id: answer.id,
      object: "chat.completion",
      created: answer.created,
      model: answer.request.model,
      choices: [{ index: 0, message: { role: "assistant", content: text, refusal: null }, logprobs: null, finish_reason: "stop" }],
      usage: usageJson(usage),
    };
  },
};
