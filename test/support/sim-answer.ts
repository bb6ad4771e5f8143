import type { GenerationRequest } from "../../src/core/entries.ts";
import { simTokens } from "../../src/llm/sim/sim-text.ts";

/** A request for the built-in `sim` model: one user message. */
export function simRequest(content: string, options: { readonly max_tokens?: number; readonly seed?: number } = {}): GenerationRequest {
  return { model: "sim", messages: [{ role: "user", content }], ...options };
}

/** The text an uninterrupted run of `request` ends with, byte for byte: what every failure test compares against. */
export function simText(request: Pick<GenerationRequest, "messages" | "max_tokens" | "seed">): string {
  return simTokens(request).join("");
}

/** A sim request and its uninterrupted text, together. */
export function simAsk(content: string, maxTokens: number): { request: GenerationRequest; expected: string } {
  const request = simRequest(content, { max_tokens: maxTokens });
  return { request, expected: simText(request) };
}
