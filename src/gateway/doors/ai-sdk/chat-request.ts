import { z } from "zod";
import type { ChatMessage, GenerationRequest } from "../../../core/entries.ts";
import { LifelineError } from "../../../core/errors.ts";
import { parseGenerationRequest, REQUEST_LIMITS } from "../../../core/request.ts";

/**
 * A chat id as this door accepts it: 1 to 128 of `A-Z a-z 0-9 _ - . : ~` (what `generateId`,
 * UUIDs and nanoids are made of), never `.` or `..` (the SDK refuses those in its resume URL).
 */
export const CHAT_ID = /^(?!\.\.?$)[A-Za-z0-9_.:~-]{1,128}$/;

/** Throws `invalid_chat_id` unless `chatId` is one this door accepts. */
export function checkChatId(chatId: unknown): string {
  if (typeof chatId === "string" && CHAT_ID.test(chatId)) return chatId;
  throw new LifelineError("invalid_chat_id");
}

/** Parts that carry nothing for the model: the step boundary the SDK adds, and the app's own data. */
const SILENT_PART = /^(step-start|data-.+)$/;

const partSchema = z.looseObject({ type: z.string().min(1).max(200), text: z.unknown().optional() });

const bodySchema = z
  .object({
    // What `DefaultChatTransport` sends.
    id: z.string(),
    messages: z
      .array(
        z.object({
          id: z.string().max(256).optional(),
          role: z.enum(["system", "user", "assistant"]),
          parts: z.array(partSchema).max(REQUEST_LIMITS.messages),
          metadata: z.unknown().optional(),
        }),
      )
      .min(1)
      .max(REQUEST_LIMITS.messages),
    trigger: z.enum(["submit-message", "regenerate-message"]).optional(),
    messageId: z.string().max(256).optional(),
    // What an app adds through the transport's `body` option.
    model: z.string().min(1).max(200).optional(),
    max_tokens: z.unknown().optional(),
    temperature: z.unknown().optional(),
    seed: z.unknown().optional(),
    metadata: z.unknown().optional(),
  })
  .strict();

/** A chat turn the door accepted: the chat it belongs to and the generation request it maps to. */
export interface ChatTurn {
  readonly chatId: string;
  readonly request: GenerationRequest;
}

/**
 * Maps the body `DefaultChatTransport` POSTs (`{id, messages, trigger, messageId}` and the app's
 * `body` fields) to a generation request: each UI message's text parts, joined, are its content;
 * `step-start` and `data-*` parts carry nothing for the model and are left out. The model is the
 * body's `model`, else `defaultModel`. `max_tokens`, `temperature`, `seed` and `metadata` pass
 * through and are checked as on the native API.
 *
 * Throws `invalid_request` (the shape, with `details`), `invalid_chat_id`, and
 * `unsupported_message_part` for a part the model cannot be given (files, tools, reasoning, sources).
 */
export function chatTurnOf(body: unknown, defaultModel: string | undefined): ChatTurn {
  const parsed = bodySchema.safeParse(body);
  if (!parsed.success) throw new LifelineError("invalid_request", undefined, issuesOf(parsed.error.issues));
  const { id, messages, trigger: _trigger, messageId: _messageId, model, ...parameters } = parsed.data;
  const chatId = checkChatId(id);
  const mapped: ChatMessage[] = messages.map((message, m) => ({ role: message.role, content: textOf(message.parts, m) }));
  const request = { model: model ?? defaultModel ?? "", messages: mapped, ...definedOnly(parameters) };
  const checked = parseGenerationRequest(request);
  if (!checked.ok) throw new LifelineError("invalid_request", undefined, checked.issues);
  return { chatId, request: checked.request };
}

function textOf(parts: readonly z.infer<typeof partSchema>[], m: number): string {
  let text = "";
  for (const [p, part] of parts.entries()) {
    if (part.type === "text") {
      if (typeof part.text !== "string") {
        throw new LifelineError("invalid_request", undefined, [
          { path: `messages.${m}.parts.${p}.text`, message: "a text part needs a string `text`" },
        ]);
      }
      text += part.text;
    } else if (!SILENT_PART.test(part.type)) {
      throw new LifelineError(
        "unsupported_message_part",
        `A "${part.type.slice(0, 64)}" part cannot be given to the model: this door sends text parts only.`,
        [{ path: `messages.${m}.parts.${p}.type`, message: `unsupported part type "${part.type.slice(0, 64)}"` }],
      );
    }
  }
  return text;
}

function definedOnly(fields: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined));
}

function issuesOf(issues: readonly z.core.$ZodIssue[]): { path: string; message: string }[] {
  return issues.map((issue) => ({ path: issue.path.map(String).join(".") || "(body)", message: issue.message }));
}
