import type { ChatMessage, GenerationRequest } from "../../core/entries.ts";
import { hash32, prng } from "./prng.ts";

/** Answer length when the request names no `max_tokens`. */
export const SIM_DEFAULT_MAX_TOKENS = 120;

const WORDS = (
  "the a an of to and in that is for it as with on be by this are from at or was have not but " +
  "log answer stream token model worker gateway client cursor offset replay resume failover lease " +
  "fence redis sqlite event durable ordered exactly once survive crash network retry fallback " +
  "timeout heartbeat replica sentinel cluster shard queue backpressure buffer latency throughput " +
  "every each always never again before after while until because therefore however which whose " +
  "keeps holds writes reads appends claims renews hands continues rebuilds folds delivers waits " +
  "quietly quickly safely again together alone first last next whole partial stable steady"
).split(" ");

function tokensFrom(seed: number, count: number): string[] {
  const next = prng(seed);
  const tokens: string[] = [];
  let sentenceStart = true;
  for (let i = 0; i < count; i++) {
    let word = WORDS[Math.floor(next() * WORDS.length)] ?? "the";
    if (sentenceStart) word = word.charAt(0).toUpperCase() + word.slice(1);
    const last = i === count - 1;
    const roll = next();
    const end = last || roll < 0.08 ? "." : roll < 0.14 ? "," : "";
    tokens.push((i === 0 ? "" : " ") + word + end);
    sentenceStart = end === ".";
  }
  return tokens;
}

function seedOf(messages: readonly ChatMessage[], seed: number): number {
  return hash32(`${seed}\u0000${messages.map((m) => `${m.role}\u0000${m.content}`).join("\u0001")}`);
}

/** The whole answer of the simulator for a request, token by token. Deterministic. */
export function simTokens(request: Pick<GenerationRequest, "messages" | "seed" | "max_tokens">): string[] {
  return tokensFrom(seedOf(request.messages, request.seed ?? 0), request.max_tokens ?? SIM_DEFAULT_MAX_TOKENS);
}

/**
 * The tokens that follow `prefix`. When `prefix` is a prefix of the simulator's own answer, the
 * continuation is exactly the rest of that answer, so an interrupted and continued answer equals
 * the uninterrupted one byte for byte. Any other prefix gets a deterministic continuation of its own.
 */
export function simContinuation(request: Pick<GenerationRequest, "messages" | "seed" | "max_tokens">, prefix: string): string[] {
  const tokens = simTokens(request);
  let length = 0;
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i] ?? "";
    if (length + token.length <= prefix.length) {
      length += token.length;
      if (prefix.slice(length - token.length, length) !== token) return divergent(request, prefix);
      continue;
    }
    // `prefix` ends at `length` plus part of this token.
    const part = prefix.slice(length);
    if (!token.startsWith(part)) return divergent(request, prefix);
    const rest = token.slice(part.length);
    return [...(rest ? [rest] : []), ...tokens.slice(i + 1)];
  }
  return prefix.length === length ? [] : divergent(request, prefix);
}

function divergent(request: Pick<GenerationRequest, "messages" | "seed" | "max_tokens">, prefix: string): string[] {
  const total = request.max_tokens ?? SIM_DEFAULT_MAX_TOKENS;
  const used = prefix.split(/\s+/).filter(Boolean).length;
  const remaining = Math.max(0, total - used);
  return tokensFrom(hash32(prefix) ^ seedOf(request.messages, request.seed ?? 0), remaining).map((t, i) =>
    i === 0 && prefix.length > 0 ? ` ${t.trimStart()}` : t,
  );
}

/** Whitespace-separated words: the simulator's measure of prompt size. */
export function countPromptTokens(messages: readonly ChatMessage[]): number {
  return messages.reduce((n, m) => n + m.content.split(/\s+/).filter(Boolean).length, 0);
}
