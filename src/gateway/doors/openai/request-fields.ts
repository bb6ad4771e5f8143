import type { ChatMessage, GenerationRequest } from "../../../core/entries.ts";
import { LifelineError } from "../../../core/errors.ts";
import { parseGenerationRequest } from "../../../core/request.ts";

/** A problem with one field of a request, named by its path (`messages.2.content.0.type`). */
export interface FieldIssue {
  readonly path: string;
  readonly message: string;
}

/**
 * What a door does with a field of OpenAI's request it does not map to Lifeline's: `ignore` (a
 * hint that changes nothing about the answer, such as `user`), or a test of the values it can
 * honour (the neutral ones: `n: 1`, `tools: []`, `top_p: 1`); any other value is refused.
 */
export type FieldRule = "ignore" | { readonly neutral: (value: unknown) => boolean; readonly why: string };

/** A value that means "not set": OpenAI's clients send `null` for an optional field left empty. */
/** The roles Lifeline keeps; `developer` is OpenAI's newer name for `system`. */
export const ROLES: Readonly<Record<string, ChatMessage["role"]>> = {
  system: "system",
  developer: "system",
  user: "user",
  assistant: "assistant",
};

export function isUnset(value: unknown): boolean {
  return value === undefined || value === null;
}

export const neutralWhen = (why: string, test: (value: unknown) => boolean): FieldRule => ({
  neutral: (value) => isUnset(value) || test(value),
  why,
});

export const isEmptyList = (value: unknown): boolean => Array.isArray(value) && value.length === 0;
export const isEmptyObject = (value: unknown): boolean =>
  typeof value === "object" && value !== null && !Array.isArray(value) && Object.keys(value).length === 0;

/** A JSON object (not an array, not null). */
export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Collects the issues of a request: fields it cannot honour, and values that are wrong. */
export class RequestIssues {
  readonly unsupported: FieldIssue[] = [];
  readonly invalid: FieldIssue[] = [];

  cannot(path: string, message: string): void {
    this.unsupported.push({ path, message });
  }

  wrong(path: string, message: string): void {
    this.invalid.push({ path, message });
  }

  /**
   * Checks the top-level fields a door does not map: each is ignored, honoured when neutral, or
   * refused; a field the door does not know at all is refused too (a typo never passes silently).
   */
  checkFields(body: Record<string, unknown>, mapped: ReadonlySet<string>, rules: Readonly<Record<string, FieldRule>>): void {
    for (const [name, value] of Object.entries(body)) {
      if (mapped.has(name)) continue;
      const rule = Object.hasOwn(rules, name) ? rules[name] : undefined;
      if (rule === undefined) this.cannot(name, "Lifeline does not know this field.");
      else if (rule !== "ignore" && !rule.neutral(value)) this.cannot(name, rule.why);
    }
  }

  /** Throws the first kind of problem found: what cannot be honoured first, then what is wrong. */
  throwIfAny(): void {
    const first = this.unsupported[0] ?? this.invalid[0];
    if (!first) return;
    if (this.unsupported.length > 0) {
      throw new LifelineError("unsupported_parameter", `${first.path}: ${first.message}`, this.unsupported);
    }
    throw new LifelineError("invalid_request", `${first.path}: ${first.message}`, this.invalid);
  }
}

/** A non-negative whole number, or `undefined` when unset; records an issue otherwise. */
export function optionalNumber(issues: RequestIssues, body: Record<string, unknown>, name: string): number | undefined {
  const value = body[name];
  if (isUnset(value)) return undefined;
  if (typeof value !== "number" || !Number.isFinite(value)) {
    issues.wrong(name, "Expected a number.");
    return undefined;
  }
  return value;
}

/** A boolean, `fallback` when unset; records an issue otherwise. */
export function optionalBoolean(issues: RequestIssues, body: Record<string, unknown>, name: string, fallback: boolean): boolean {
  const value = body[name];
  if (isUnset(value)) return fallback;
  if (typeof value !== "boolean") {
    issues.wrong(name, "Expected true or false.");
    return fallback;
  }
  return value;
}

/** The model asked for, or the deployment's first when the request names none. */
export function modelOf(issues: RequestIssues, body: Record<string, unknown>, models: () => readonly string[]): string {
  const value = body.model;
  if (isUnset(value)) return models()[0] ?? "";
  if (typeof value !== "string") {
    issues.wrong("model", "Expected a string.");
    return "";
  }
  return value;
}

/**
 * Checks the mapped request against Lifeline's own schema (limits on messages, tokens, metadata),
 * naming each problem by the OpenAI field it came from, then returns it.
 */
export function finishRequest(
  issues: RequestIssues,
  request: {
    model: string;
    messages: ChatMessage[];
    max_tokens?: number | undefined;
    temperature?: number | undefined;
    seed?: number | undefined;
    metadata?: unknown;
  },
  fieldOf: Readonly<Record<string, string>>,
): GenerationRequest {
  issues.throwIfAny();
  const candidate: Record<string, unknown> = { model: request.model, messages: request.messages };
  for (const key of ["max_tokens", "temperature", "seed", "metadata"] as const) {
    if (request[key] !== undefined) candidate[key] = request[key];
  }
  const parsed = parseGenerationRequest(candidate);
  if (parsed.ok) return parsed.request;
  for (const issue of parsed.issues) {
    const [head = "", ...rest] = issue.path.split(".");
    issues.wrong([fieldOf[head] ?? head, ...rest].join("."), issue.message);
  }
  issues.throwIfAny();
  throw new LifelineError("invalid_request"); // not reached: a refused request has issues
}
