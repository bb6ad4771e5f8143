/**
 * The log of a generation (DESIGN §3): every entry has an offset that starts at 1 and rises by
 * exactly one, a type, the time it was appended and the attempt (fencing token) that wrote it.
 */

import type { ErrorCode } from "./errors.ts";

/** A message of the conversation that a generation answers. */
export interface ChatMessage {
  readonly role: "system" | "user" | "assistant";
  readonly content: string;
}

/** The accepted request, stored in the `created` entry. */
export interface GenerationRequest {
  readonly model: string;
  readonly messages: readonly ChatMessage[];
  readonly max_tokens?: number;
  readonly temperature?: number;
  readonly seed?: number;
  readonly metadata?: Readonly<Record<string, string>>;
}

/** Why an attempt or a generation failed: a code of the registry (`core/errors.ts`) and words for people. */
export interface ErrorInfo {
  readonly code: ErrorCode;
  readonly message: string;
}

export interface Usage {
  readonly promptTokens: number;
  readonly completionTokens: number;
}

/** The body of an entry, before the engine gives it an offset and a time. */
export type EntryBody =
  | {
      readonly type: "created";
      readonly attempt: number;
      readonly request: GenerationRequest;
      readonly tenant?: string;
      /** The W3C trace context of the gateway's create span, when tracing is on: the worker's spans join it. */
      readonly traceparent?: string;
    }
  | { readonly type: "started"; readonly attempt: number; readonly worker: string; readonly model: string }
  | { readonly type: "delta"; readonly attempt: number; readonly text: string }
  | { readonly type: "retrying"; readonly attempt: number; readonly error: ErrorInfo; readonly delayMs: number }
  | { readonly type: "rewind"; readonly attempt: number; readonly toOffset: number }
  | { readonly type: "completed"; readonly attempt: number; readonly finishReason: string; readonly usage: Usage }
  | { readonly type: "failed"; readonly attempt: number; readonly error: ErrorInfo }
  | { readonly type: "cancelled"; readonly attempt: number };

export type EntryType = EntryBody["type"];

/** An entry as it stands in the log. */
export type Entry = EntryBody & { readonly offset: number; readonly at: string };

export const TERMINAL_TYPES: ReadonlySet<EntryType> = new Set(["completed", "failed", "cancelled"]);

export const ENTRY_TYPES: readonly EntryType[] = ["created", "started", "delta", "retrying", "rewind", "completed", "failed", "cancelled"];

export function isTerminal(entry: { readonly type: EntryType }): boolean {
  return TERMINAL_TYPES.has(entry.type);
}

/** Builds a stored entry from its body: `offset` and `at` first, the way DESIGN §3 prints them. */
export function stampEntry(body: EntryBody, offset: number, at: string): Entry {
  const { type, ...rest } = body;
  return { offset, type, at, ...rest } as Entry;
}
