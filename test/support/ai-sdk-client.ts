import { DefaultChatTransport, readUIMessageStream, type UIMessage, type UIMessageChunk } from "ai";
import { AI_SDK_PATHS } from "../../src/gateway/doors/ai-sdk/routes.ts";
import { simText } from "./sim-answer.ts";

/** The door's path, as an app passes it to the transport's `api`. */
export const AI_SDK_API = AI_SDK_PATHS.chat;

/** A user message as `useChat` holds it. */
export function userMessage(text: string, id = "u1"): UIMessage {
  return { id, role: "user", parts: [{ type: "text", text }] };
}

/** What the uninterrupted `sim` answer to one user message is, for the body fields the tests send. */
export function simAnswerTo(text: string, fields: { readonly max_tokens: number; readonly seed?: number }): string {
  return simText({ messages: [{ role: "user", content: text }], ...fields });
}

/** The official transport against a gateway, with the app's extra `body` fields. */
export function transportFor(baseUrl: string, body: Record<string, unknown> = {}): DefaultChatTransport<UIMessage> {
  return new DefaultChatTransport<UIMessage>({ api: `${baseUrl}${AI_SDK_API}`, body });
}

/** The text of a UI message: its text parts, in order. */
export function textOf(message: UIMessage | undefined): string {
  return (message?.parts ?? []).map((part) => (part.type === "text" ? part.text : "")).join("");
}

/** What one stream gave: every chunk, the message `readUIMessageStream` built from them, and the errors it reported. */
export interface ReadStream {
  readonly chunks: UIMessageChunk[];
  readonly message: UIMessage | undefined;
  readonly errors: string[];
  /** Why reading stopped early (a cut connection), or `undefined` when the stream ended. */
  readonly failure: unknown;
}

/**
 * Reads a UI message stream through the SDK's `readUIMessageStream`, keeping a copy of each chunk;
 * `onChunk` is called with every chunk as it arrives (a test cuts the connection from there).
 */
export async function readStream(
  stream: ReadableStream<UIMessageChunk>,
  onChunk: (chunk: UIMessageChunk, n: number) => void = () => {},
): Promise<ReadStream> {
  const chunks: UIMessageChunk[] = [];
  const errors: string[] = [];
  let failure: unknown;
  const tapped = stream.pipeThrough(
    new TransformStream<UIMessageChunk, UIMessageChunk>({
      transform(chunk, controller) {
        chunks.push(chunk);
        controller.enqueue(chunk);
        onChunk(chunk, chunks.length);
      },
    }),
  );
  let message: UIMessage | undefined;
  try {
    for await (const snapshot of readUIMessageStream<UIMessage>({
      stream: tapped,
      onError: (error) => errors.push(error instanceof Error ? error.message : String(error)),
      terminateOnError: false,
    })) {
      message = snapshot;
    }
  } catch (error) {
    failure = error;
  }
  // readUIMessageStream reports a broken stream through onError and then simply ends.
  if (failure === undefined && chunks.at(-1)?.type !== "finish" && chunks.at(-1)?.type !== "abort" && chunks.at(-1)?.type !== "error") {
    failure = errors.at(-1) ?? "the stream ended before its last chunk";
  }
  return { chunks, message, errors, failure };
}
