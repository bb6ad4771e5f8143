/**
 * `lifeline/client`: the browser and Node SDK. Start an answer, then follow it to its end through
 * dropped connections, dead links, gateway restarts and Redis failovers: it resumes from its cursor,
 * applies every entry once and in order, and rebuilds the text on `reset`.
 *
 * ```ts
 * const client = createClient({ baseUrl: "http://127.0.0.1:8787" });
 * const { id } = await client.start({ model: "sim", messages: [{ role: "user", content: "Hi" }] });
 * const follow = client.follow(id);
 * for await (const event of follow) if (event.type === "entry") render(event.text);
 * const { text, status } = await follow.done;
 * ```
 *
 * No Node-only imports: fetch, ReadableStream, TextDecoder, AbortController and a WebSocket class.
 * The API's paths come with it (`routes`), for pages and tools that call an endpoint themselves.
 * @packageDocumentation
 */
export { createClient, type ClientOptions, type LifelineClient, type StartedGeneration } from "./client.ts";
export { AnswerFollow } from "./follow.ts";
export { DEFAULT_RECONNECT, type ReconnectPolicy } from "./backoff.ts";
export { LifelineClientError } from "./errors.ts";
export type { ReadTokenSource } from "./credentials.ts";
export type { FetchFunction } from "./sse-transport.ts";
export type { TransportName } from "./transport.ts";
export type { WebSocketConstructor, WebSocketEventLike, WebSocketLike } from "./ws-transport.ts";
export type { FinalAnswer, FinalStatus, FollowEvent, FollowOptions, FollowState, StartOptions } from "./types.ts";
export type { ChatMessage, Entry, GenerationRequest } from "../core/entries.ts";
export { routes } from "../core/routes.ts";
