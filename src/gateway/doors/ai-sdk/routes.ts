import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { LifelineError } from "../../../core/errors.ts";
import { tenantOf, type Caller } from "../../auth/caller.ts";
import { HEADERS } from "../../../core/wire.ts";
import { Follow } from "../../follow.ts";
import { DoorStream } from "../door-stream.ts";
import { viewOf } from "../../generation-view.ts";
import { startOf } from "../../log-follower.ts";
import { SseStreams } from "../../sse-streams.ts";
import { idempotencyKeyOf } from "../../start-generation.ts";
import type { DoorOptions } from "../door-options.ts";
import { chatTurnOf, checkChatId } from "./chat-request.ts";
import { UI_STREAM_HEADERS, UiMessageFormat } from "./ui-stream.ts";

/** The paths of this door; `:chatId` is the AI SDK's chat id. */
export const AI_SDK_PATHS = {
  /** `POST`: starts an answer to the chat's messages and streams it (the transport's `api`). */
  chat: "/v1/ai-sdk/chat",
  /** `GET`: the chat's answer in progress, replayed from `start` and then live; 204 when none is. */
  stream: "/v1/ai-sdk/chat/:chatId/stream",
  /** `POST`: cancels the chat's answer in progress. */
  stop: "/v1/ai-sdk/chat/:chatId/stop",
} as const;

/**
 * The Vercel AI SDK's UI message stream door (docs/protocols/ai-sdk.md): what `useChat` with
 * `new DefaultChatTransport({ api: "<gateway>/v1/ai-sdk/chat" })` and `resume: true` calls. Every
 * request starts or follows an ordinary generation; the stream is a view of its log. The chat's
 * answer in progress is named in the engine, so a resume or a stop may reach any gateway.
 */
export function aiSdkRoutes(app: FastifyInstance, options: DoorOptions): void {
  const { engine, metrics } = options;
  const streams = new SseStreams(options);

  /** Streams the answer `id` from its `created` entry on (the SDK takes every stream as a whole answer). */
  async function streamAnswer(
    request: FastifyRequest,
    reply: FastifyReply,
    id: string,
    headers: Readonly<Record<string, string>> = UI_STREAM_HEADERS,
  ): Promise<FastifyReply> {
    const start = await startOf(engine, metrics, id, { epoch: undefined, offset: 0 });
    if (start.kind === "atEnd") throw new Error("a follow from offset 0 always has entries to give");
    if (options.shutdown.aborted) throw new LifelineError("shutting_down");
    request.log.info({ generation: id }, "ui message stream opened");
    const stream = new DoorStream(streams.open(reply, id, "", headers), new UiMessageFormat(id), options.shutdown);
    stream.follow = new Follow(options.tails, id, start.from, stream);
    stream.follow.start(start.firstPage);
    return reply;
  }

  /**
   * The generation the caller's chat names, if the caller may see it. Chats are named per tenant, so
   * two tenants' equal chat ids are two chats; a generation the caller may not see is no answer.
   */
  async function chatAnswerOf(caller: Caller, chatId: unknown): Promise<string | undefined> {
    const id = await engine.chatGeneration(chatKeyOf(caller, checkChatId(chatId)));
    if (id === undefined) return undefined;
    try {
      await options.owners.check(caller, id);
      return id;
    } catch (error) {
      if (error instanceof LifelineError && error.code === "generation_not_found") return undefined;
      throw error;
    }
  }

  app.post(AI_SDK_PATHS.chat, async (request, reply) => {
    if (!isJson(request.headers["content-type"])) throw new LifelineError("unsupported_media_type");
    const key = idempotencyKeyOf(request.headers);
    const turn = chatTurnOf(request.body, options.models()[0]);
    const started = await options.starter.start(turn.request, key, request.caller, request.headers.traceparent);
    await engine.setChatGeneration(chatKeyOf(request.caller, turn.chatId), started.id);
    request.log.info({ generation: started.id, chat: turn.chatId, replay: started.replayed }, "chat answer accepted");
    // The stream writes its own head: the replay's header goes with it.
    const headers = started.replayed ? { ...UI_STREAM_HEADERS, [HEADERS.idempotentReplayed]: "true" } : UI_STREAM_HEADERS;
    return streamAnswer(request, reply, started.id, headers);
  });

  app.get<{ Params: { chatId: string } }>(AI_SDK_PATHS.stream, async (request, reply) => {
    const id = await chatAnswerOf(request.caller, request.params.chatId);
    const head = id === undefined ? undefined : await engine.head(id);
    // No answer in progress: the SDK then does not resume.
    if (id === undefined || !head || head.terminal) return reply.status(204).send();
    metrics.resumes.inc();
    try {
      return await streamAnswer(request, reply, id);
    } catch (error) {
      // Expired between the look and the read.
      if (error instanceof LifelineError && error.code === "generation_not_found") return reply.status(204).send();
      throw error;
    }
  });

  app.post<{ Params: { chatId: string } }>(AI_SDK_PATHS.stop, async (request, reply) => {
    const chatId = checkChatId(request.params.chatId);
    const id = await chatAnswerOf(request.caller, chatId);
    const result = id === undefined ? "notFound" : await engine.cancel(id);
    if (id === undefined || result === "notFound") throw new LifelineError("chat_not_found");
    if (result === "alreadyFinished") {
      const view = await viewOf(engine, id);
      if (view?.status !== "cancelled") throw new LifelineError("already_finished", `The chat's answer already ${view?.status}.`);
    } else {
      metrics.answersFinished.inc({ outcome: "cancelled" });
      request.log.info({ generation: id, chat: chatId }, "chat answer stopped");
    }
    return reply.status(202).send({ chatId, generationId: id, status: "cancelled" });
  });
}

/** The engine's name of a chat: its id, under the caller's tenant when the deployment has keys (a chat id has no `/`). */
function chatKeyOf(caller: Caller, chatId: string): string {
  const tenant = tenantOf(caller);
  return tenant === undefined ? chatId : `${tenant}/${chatId}`;
}

function isJson(contentType: string | undefined): boolean {
  return contentType !== undefined && /^application\/json\s*(;|$)/i.test(contentType);
}
