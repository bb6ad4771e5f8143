import { LifelineError } from "../../../core/errors.ts";

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * A JSON stream's body as one stored chunk (PROTOCOL.md §9.1): the messages it carries, each as
 * compact JSON, joined by commas. An array is flattened one level (`[a,b]` is two messages, `[[1]]`
 * one); any other value is one message. `undefined` for `[]`, which only a create may send.
 */
export function jsonChunk(body: Buffer, allowEmptyArray: boolean): Buffer | undefined {
  let value: unknown;
  try {
    value = JSON.parse(utf8.decode(body));
  } catch (error) {
    if (error instanceof TypeError) throw new LifelineError("invalid_utf8");
    throw new LifelineError("invalid_json", "The body of a JSON stream's append must be JSON.");
  }
  const messages = Array.isArray(value) ? value : [value];
  if (messages.length === 0) {
    if (allowEmptyArray) return undefined;
    throw new LifelineError("empty_json_array");
  }
  return Buffer.from(messages.map((message) => JSON.stringify(message)).join(","), "utf8");
}

/** The messages of stored chunks as one JSON array. */
export function jsonArrayOf(chunks: readonly Buffer[]): Buffer {
  if (chunks.length === 0) return Buffer.from("[]");
  const parts: Buffer[] = [Buffer.from("[")];
  chunks.forEach((chunk, i) => {
    if (i > 0) parts.push(Buffer.from(","));
    parts.push(chunk);
  });
  parts.push(Buffer.from("]"));
  return Buffer.concat(parts);
}
