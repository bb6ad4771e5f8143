import type { ChatMessage, GenerationRequest } from "../../../core/entries.ts";
import { LifelineError } from "../../../core/errors.ts";
import {
  RequestIssues,
  finishRequest,
  isEmptyList,
  isEmptyObject,
  isObject,
  isUnset,
  modelOf,
  neutralWhen,
  optionalBoolean,
  optionalNumber,
  type FieldRule,
  ROLES,
} from "./request-fields.ts";

/** A chat completion request as Lifeline runs it. */
export interface ChatCall {
  readonly request: GenerationRequest;
  readonly stream: boolean;
  /** `stream_options.include_usage`: a last chunk with `choices: []` and the usage. */
  readonly includeUsage: boolean;
}

/** The fields of `POST /v1/chat/completions` that map to Lifeline's request. */
const MAPPED = new Set([
  "model",
  "messages",
  "max_tokens",
  "max_completion_tokens",
  "temperature",
  "seed",
  "metadata",
  "stream",
  "stream_options",
]);

const NO_TOOLS = "Lifeline answers with text only: no tools or functions.";

/** The other fields: hints that change nothing, and parameters honoured only at their neutral value. */
const RULES: Readonly<Record<string, FieldRule>> = {
  user: "ignore",
  safety_identifier: "ignore",
  prompt_cache_key: "ignore",
  prompt_cache_retention: "ignore",
  service_tier: "ignore",
  store: "ignore",
  parallel_tool_calls: "ignore",
  n: neutralWhen("Lifeline gives one choice per request (n: 1).", (v) => v === 1),
  top_p: neutralWhen("Lifeline does not sample with top_p (top_p: 1 only).", (v) => v === 1),
  presence_penalty: neutralWhen("Lifeline applies no presence penalty (0 only).", (v) => v === 0),
  frequency_penalty: neutralWhen("Lifeline applies no frequency penalty (0 only).", (v) => v === 0),
  logprobs: neutralWhen("Lifeline does not return log probabilities.", (v) => v === false),
  top_logprobs: neutralWhen("Lifeline does not return log probabilities.", (v) => v === 0),
  logit_bias: neutralWhen("Lifeline applies no logit bias.", isEmptyObject),
  stop: neutralWhen("Lifeline does not stop on sequences of the client's.", isEmptyList),
  tools: neutralWhen(NO_TOOLS, isEmptyList),
  functions: neutralWhen(NO_TOOLS, isEmptyList),
  tool_choice: neutralWhen(NO_TOOLS, (v) => v === "none" || v === "auto"),
  function_call: neutralWhen(NO_TOOLS, (v) => v === "none" || v === "auto"),
  response_format: neutralWhen("Lifeline answers in plain text (response_format: text only).", (v) => isObject(v) && v.type === "text"),
  modalities: neutralWhen("Lifeline answers in text only.", (v) => Array.isArray(v) && v.length === 1 && v[0] === "text"),
  audio: neutralWhen("Lifeline answers in text only.", () => false),
  prediction: neutralWhen("Lifeline does not take predicted outputs.", () => false),
  reasoning_effort: neutralWhen("Lifeline does not pass reasoning settings to the model.", () => false),
  verbosity: neutralWhen("Lifeline does not pass verbosity settings to the model.", () => false),
  web_search_options: neutralWhen("Lifeline does not search the web.", () => false),
};

/** Maps the body of `POST /v1/chat/completions` to Lifeline's request; throws `unsupported_parameter` or `invalid_request`. */
export function parseChatCall(body: unknown, models: () => readonly string[]): ChatCall {
  if (!isObject(body)) throw new LifelineError("invalid_request", "The body must be a JSON object.");
  const issues = new RequestIssues();
  issues.checkFields(body, MAPPED, RULES);
  const model = modelOf(issues, body, models);
  const messages = messagesOf(issues, body.messages);
  const maxTokens = optionalNumber(issues, body, "max_tokens");
  const maxCompletionTokens = optionalNumber(issues, body, "max_completion_tokens");
  if (maxTokens !== undefined && maxCompletionTokens !== undefined && maxTokens !== maxCompletionTokens) {
    issues.wrong("max_completion_tokens", "max_tokens and max_completion_tokens differ; send one of them.");
  }
  const stream = optionalBoolean(issues, body, "stream", false);
  const includeUsage = includeUsageOf(issues, body.stream_options);
  const request = finishRequest(
    issues,
    {
      model,
      messages,
      max_tokens: maxCompletionTokens ?? maxTokens,
      temperature: optionalNumber(issues, body, "temperature"),
      seed: optionalNumber(issues, body, "seed"),
      metadata: isUnset(body.metadata) ? undefined : body.metadata,
    },
    { max_tokens: maxCompletionTokens === undefined ? "max_tokens" : "max_completion_tokens" },
  );
  return { request, stream, includeUsage };
}

function includeUsageOf(issues: RequestIssues, options: unknown): boolean {
  if (isUnset(options)) return false;
  if (!isObject(options)) {
    issues.wrong("stream_options", "Expected an object.");
    return false;
  }
  for (const key of Object.keys(options)) {
    // `include_obfuscation` pads chunks against side channels; there is nothing to pad here.
    if (key !== "include_usage" && key !== "include_obfuscation")
      issues.cannot(`stream_options.${key}`, "Lifeline does not know this option.");
  }
  return optionalBoolean(issues, options, "include_usage", false);
}

function messagesOf(issues: RequestIssues, value: unknown): ChatMessage[] {
  if (!Array.isArray(value)) {
    issues.wrong("messages", "Expected an array of messages.");
    return [];
  }
  const messages: ChatMessage[] = [];
  value.forEach((message: unknown, i) => {
    const path = `messages.${i}`;
    if (!isObject(message)) return issues.wrong(path, "Expected a message object.");
    const role = typeof message.role === "string" && Object.hasOwn(ROLES, message.role) ? ROLES[message.role] : undefined;
    if (role === undefined) {
      if (message.role === "tool" || message.role === "function") return issues.cannot(`${path}.role`, NO_TOOLS);
      return issues.wrong(`${path}.role`, "Expected system, developer, user or assistant.");
    }
    for (const [key, field] of Object.entries(message)) {
      if (key === "role" || key === "content") continue;
      if (key === "refusal" && isUnset(field)) continue;
      if ((key === "tool_calls" || key === "function_call") && (isUnset(field) || isEmptyList(field))) continue;
      if (key === "tool_calls" || key === "function_call") issues.cannot(`${path}.${key}`, NO_TOOLS);
      else if (key === "name") issues.cannot(`${path}.name`, "Lifeline's messages carry no participant names.");
      else issues.cannot(`${path}.${key}`, "Lifeline does not know this field of a message.");
    }
    const content = textOf(issues, `${path}.content`, message.content);
    if (content !== undefined) messages.push({ role, content });
  });
  return messages;
}

/** A message's text: a string, or text parts joined as they stand. */
function textOf(issues: RequestIssues, path: string, content: unknown): string | undefined {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) {
    issues.wrong(path, "Expected a string or an array of text parts.");
    return undefined;
  }
  let text = "";
  content.forEach((part: unknown, j) => {
    if (!isObject(part)) return issues.wrong(`${path}.${j}`, "Expected a content part object.");
    if (part.type !== "text")
      return issues.cannot(`${path}.${j}.type`, `Lifeline takes text parts only, not ${JSON.stringify(part.type)}.`);
    if (typeof part.text !== "string") return issues.wrong(`${path}.${j}.text`, "Expected a string.");
    text += part.text;
  });
  return text;
}
