/**
 * The tokens of the stamped model (`stamped-model.ts`): 40 ASCII bytes each, carrying the answer
 * they belong to, their sequence number in it and the moment the model wrote them, so a reader
 * can time every token and prove its answer has no gap, repeat or reordering.
 *
 *   #00042:000017@1761234567890.123~~~~~~~~
 *   answer  seq    emitted (ms, wallNow)  padding, then one space
 */

/** Every token is exactly this long. */
export const TOKEN_BYTES = 40;

const ANSWER_DIGITS = 5;
const SEQ_DIGITS = 6;
const TIME_START = 1 + ANSWER_DIGITS + 1 + SEQ_DIGITS + 1;
const TIME_CHARS = 17;

/** The token `seq` of answer `answer`, written at `emittedAt` (ms on the `wallNow` clock). */
export function stampToken(answer: number, seq: number, emittedAt: number): string {
  const head = `#${String(answer).padStart(ANSWER_DIGITS, "0")}:${String(seq).padStart(SEQ_DIGITS, "0")}@${emittedAt.toFixed(3)}`;
  return `${head.padEnd(TOKEN_BYTES - 1, "~")} `;
}

/** One token read back. */
export interface StampedToken {
  readonly answer: number;
  readonly seq: number;
  readonly emittedAt: number;
}

/** The token that starts at `at` in `text`, or undefined when those 40 characters are not one. */
export function readToken(text: string, at: number): StampedToken | undefined {
  if (text.charCodeAt(at) !== 35 /* # */ || text.charCodeAt(at + TOKEN_BYTES - 1) !== 32 /* space */) return undefined;
  const answer = Number(text.slice(at + 1, at + 1 + ANSWER_DIGITS));
  const seq = Number(text.slice(at + 2 + ANSWER_DIGITS, at + 2 + ANSWER_DIGITS + SEQ_DIGITS));
  const emittedAt = Number(text.slice(at + TIME_START, at + TIME_START + TIME_CHARS));
  return Number.isInteger(answer) && Number.isInteger(seq) && Number.isFinite(emittedAt) ? { answer, seq, emittedAt } : undefined;
}

/** The user message that asks the stamped model for answer `answer` of `tokens` tokens. */
export function stampedPrompt(tag: string, answer: number, tokens: number): string {
  return `${tag} answer ${answer} tokens ${tokens}`;
}

/** The answer and length a prompt of `stampedPrompt` asks for. */
export function parseStampedPrompt(content: string): { answer: number; tokens: number } | undefined {
  const match = / answer (\d+) tokens (\d+)$/.exec(content);
  return match ? { answer: Number(match[1]), tokens: Number(match[2]) } : undefined;
}
