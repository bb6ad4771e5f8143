import type { ChatMessage, Usage } from "../core/entries.ts";
import { countPromptTokens, simContinuation } from "../llm/sim/sim-text.ts";

/** A model request, whatever wire it came in on. */
export interface SimAnswerRequest {
  readonly model: string;
  /** The conversation, system prompt first, ending with the last message that is not the prefill. */
  readonly messages: readonly ChatMessage[];
  /** A trailing assistant message's text (assistant prefill): the answer continues it. */
  readonly prefix: string;
  readonly seed: number | undefined;
  /** Length of the whole answer, prefix included, as the in-process sim model counts it. */
  readonly maxTokens: number;
  readonly stream: boolean;
  /** OpenAI `stream_options.include_usage`. */
  readonly includeUsage: boolean;
}

/** What a wire format needs to frame one answer. */
export interface AnswerContext {
  readonly id: string;
  /** Unix seconds. */
  readonly created: number;
  readonly request: SimAnswerRequest;
}

export type ParsedRequest = { readonly ok: true; readonly request: SimAnswerRequest } | { readonly ok: false; readonly message: string };

/**
 * One provider wire format (OpenAI chat completions, Anthropic Messages): how a request body
 * reads, how an answer streams and how errors look. Pure text and JSON; no I/O.
 */
export interface WireDialect {
  readonly name: string;
  /** The header that carries a request id on this wire. */
  readonly requestIdHeader: string;
  /** A new answer's id, from a running number. */
  answerId(n: number): string;
  parse(body: unknown): ParsedRequest;
  /** The error body for `status`. */
  errorBody(status: number, message: string): unknown;
  /** SSE frames before the first token. */
  streamStart(answer: AnswerContext): string;
  /** The SSE frame of one token. */
  streamToken(answer: AnswerContext, text: string): string;
  /** SSE frames after the last token, through the end-of-stream marker. */
  streamFinish(answer: AnswerContext, usage: Usage): string;
  /** The whole answer as one JSON body (`stream: false`). */
  complete(answer: AnswerContext, text: string, usage: Usage): unknown;
}

/**
 * Splits a trailing assistant message off as the prefix to continue (assistant prefill); the rest
 * is the conversation the simulator answers.
 */
export function splitPrefill(messages: readonly ChatMessage[]): { messages: readonly ChatMessage[]; prefix: string } {
  const last = messages.at(-1);
  if (last?.role === "assistant") return { messages: messages.slice(0, -1), prefix: last.content };
  return { messages, prefix: "" };
}

/** The tokens the simulator sends for a request: its answer after the prefix. */
export function answerTokens(request: SimAnswerRequest): string[] {
  const sim = { messages: request.messages, max_tokens: request.maxTokens, ...(request.seed === undefined ? {} : { seed: request.seed }) };
  return simContinuation(sim, request.prefix);
}

/** Usage of an answer that sent `completionTokens` tokens; the prefill counts as prompt. */
export function answerUsage(request: SimAnswerRequest, completionTokens: number): Usage {
  const prefill: ChatMessage[] = request.prefix ? [{ role: "assistant", content: request.prefix }] : [];
  return { promptTokens: countPromptTokens([...request.messages, ...prefill]), completionTokens };
}

/** Text of a content field that is a string or a list of `{type: "text", text}` parts. */
export function contentText(content: string | readonly { readonly text: string }[]): string {
  return typeof content === "string" ? content : content.map((part) => part.text).join("");
}

/** One line per schema problem: `messages.0.role: Invalid option`. */
export function describeIssues(issues: readonly { readonly path: readonly PropertyKey[]; readonly message: string }[]): string {
  return issues.map((i) => `${i.path.map(String).join(".") || "body"}: ${i.message}`).join("; ");
}
