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

/** A `POST /v1/responses` request as Lifeline runs it. */
export interface ResponseCall {
  readonly request: GenerationRequest;
  readonly stream: boolean;
  readonly background: boolean;
}

const MAPPED = new Set(["model", "input", "instructions", "max_output_tokens", "temperature", "metadata", "stream", "background"]);

const NO_TOOLS = "Lifeline answers with text only: no tools.";
const NO_STATE = "Lifeline keeps no conversation state: send the whole conversation in `input`.";

const RULES: Readonly<Record<string, FieldRule>> = {
  user: "ignore",
  safety_identifier: "ignore",
  prompt_cache_key: "ignore",
  prompt_cache_retention: "ignore",
  service_tier: "ignore",
  store: "ignore",
  parallel_tool_calls: "ignore",
  stream_options: "ignore",
  truncation: neutralWhen("Lifeline does not truncate the conversation (truncation: disabled only).", (v) => v === "disabled"),
  top_p: neutralWhen("Lifeline does not sample with top_p (top_p: 1 only).", (v) => v === 1),
  top_logprobs: neutralWhen("Lifeline does not return log probabilities.", (v) => v === 0),
  tools: neutralWhen(NO_TOOLS, isEmptyList),
  tool_choice: neutralWhen(NO_TOOLS, (v) => v === "none" || v === "auto"),
  max_tool_calls: neutralWhen(NO_TOOLS, () => false),
  include: neutralWhen("Lifeline has nothing more to include in a response.", isEmptyList),
  text: neutralWhen(
    "Lifeline answers in plain text (text.format: text only).",
    (v) =>
      isObject(v) && Object.keys(v).every((k) => k === "format") && (isUnset(v.format) || (isObject(v.format) && v.format.type === "text")),
  ),
  reasoning: neutralWhen("Lifeline does not pass reasoning settings to the model.", isEmptyObject),
  previous_response_id: neutralWhen(NO_STATE, () => false),
  conversation: neutralWhen(NO_STATE, () => false),
  prompt: neutralWhen("Lifeline keeps no prompt templates.", () => false),
};

/** Maps the body of `POST /v1/responses` to Lifeline's request; throws `unsupported_parameter` or `invalid_request`. */
export function parseResponseCall(body: unknown, models: () => readonly string[]): ResponseCall {
  if (!isObject(body)) throw new LifelineError("invalid_request", "The body must be a JSON object.");
  const issues = new RequestIssues();
  issues.checkFields(body, MAPPED, RULES);
  const model = modelOf(issues, body, models);
  const messages: ChatMessage[] = [];
  if (!isUnset(body.instructions)) {
    if (typeof body.instructions === "string") messages.push({ role: "system", content: body.instructions });
    else issues.wrong("instructions", "Expected a string.");
  }
  messages.push(...inputOf(issues, body.input));
  const stream = optionalBoolean(issues, body, "stream", false);
  const background = optionalBoolean(issues, body, "background", false);
  const request = finishRequest(
    issues,
    {
      model,
      messages,
      max_tokens: optionalNumber(issues, body, "max_output_tokens"),
      temperature: optionalNumber(issues, body, "temperature"),
      metadata: isUnset(body.metadata) ? undefined : body.metadata,
    },
    { max_tokens: "max_output_tokens", messages: "input" },
  );
  return { request, stream, background };
}

/** `input`: a string (one user message), or message items whose content is a string or text parts. */
function inputOf(issues: RequestIssues, input: unknown): ChatMessage[] {
  if (typeof input === "string") return [{ role: "user", content: input }];
  if (!Array.isArray(input)) {
    issues.wrong("input", "Expected a string or an array of messages.");
    return [];
  }
  const messages: ChatMessage[] = [];
  input.forEach((item: unknown, i) => {
    const path = `input.${i}`;
    if (!isObject(item)) return issues.wrong(path, "Expected a message item.");
    if (!isUnset(item.type) && item.type !== "message") {
      return issues.cannot(`${path}.type`, `Lifeline takes message items only, not ${JSON.stringify(item.type)}.`);
    }
    const role = typeof item.role === "string" && Object.hasOwn(ROLES, item.role) ? ROLES[item.role] : undefined;
    if (role === undefined) return issues.wrong(`${path}.role`, "Expected system, developer, user or assistant.");
    for (const key of Object.keys(item)) {
      // An earlier response's output item sent back as it came carries its id and status.
      if (key !== "type" && key !== "role" && key !== "content" && key !== "id" && key !== "status") {
        issues.cannot(`${path}.${key}`, "Lifeline does not know this field of a message item.");
      }
    }
    const content = textOf(issues, `${path}.content`, item.content);
    if (content !== undefined) messages.push({ role, content });
  });
  return messages;
}

const TEXT_PARTS = new Set(["input_text", "output_text"]);

function textOf(issues: RequestIssues, path: string, content: unknown): string | undefined {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) {
    issues.wrong(path, "Expected a string or an array of text parts.");
    return undefined;
  }
  let text = "";
  content.forEach((part: unknown, j) => {
    if (!isObject(part)) return issues.wrong(`${path}.${j}`, "Expected a content part object.");
    if (typeof part.type !== "string" || !TEXT_PARTS.has(part.type)) {
      return issues.cannot(`${path}.${j}.type`, `Lifeline takes text parts only, not ${JSON.stringify(part.type)}.`);
    }
    if (typeof part.text !== "string") return issues.wrong(`${path}.${j}.text`, "Expected a string.");
    text += part.text;
  });
  return text;
}
