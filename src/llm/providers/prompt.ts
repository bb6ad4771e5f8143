import type { ChatMessage } from "../../core/entries.ts";

/**
 * How the answer so far travels to the model: `sent` goes as a trailing assistant message
 * (assistant prefill), and `echo` is text cut from the end of the prefix that the model is
 * expected to produce again, so it is dropped from the start of the output.
 */
export interface Prefill {
  readonly sent: string;
  readonly echo: string;
}

/** The prefix unchanged, for wire formats that carry it byte for byte. */
export function verbatimPrefill(prefix: string): Prefill {
  return { sent: prefix, echo: "" };
}

/**
 * `messages` with the prefill appended. A conversation that already ends in an assistant message
 * gets the prefill added to that message, so the model continues one text.
 */
export function withPrefill(messages: readonly ChatMessage[], prefill: string): readonly ChatMessage[] {
  const last = messages.at(-1);
  if (prefill === "") return messages;
  if (last?.role === "assistant") return [...messages.slice(0, -1), { role: "assistant", content: last.content + prefill }];
  return [...messages, { role: "assistant", content: prefill }];
}

/**
 * Drops the start of the output while it repeats `echo`; the first character that does not
 * ends the skipping, so the model's own text is never lost.
 */
export function echoSkipper(echo: string): (text: string) => string {
  let pending = echo;
  return (text) => {
    let i = 0;
    while (pending !== "" && i < text.length && text[i] === pending[0]) {
      i++;
      pending = pending.slice(1);
    }
    if (i < text.length) pending = "";
    return text.slice(i);
  };
}
