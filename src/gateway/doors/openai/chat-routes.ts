import type { FastifyInstance } from "fastify";
import { LifelineError } from "../../../core/errors.ts";
import { foldGeneration } from "../../../core/fold.ts";
import { Follow } from "../../follow.ts";
import { START } from "../../log-follower.ts";
import { SSE_HEADERS, type SseStreams } from "../../sse-streams.ts";
import { idempotencyKeyOf } from "../../start-generation.ts";
import type { DoorOptions } from "../door-options.ts";
import { ChatChunks, chatCompletionOf } from "./chat-chunks.ts";
import { parseChatCall } from "./chat-request.ts";
import { DoorStream } from "../door-stream.ts";
import { answerHeaders, requireJson } from "./request-headers.ts";
import { wholeLog } from "./whole-log.ts";
import { OPENAI_PATHS } from "./wire.ts";

/**
 * `POST /v1/chat/completions`: starts an ordinary generation (or finds the one its
 * `Idempotency-Key` names) and answers it as OpenAI does: `chat.completion.chunk` frames with
 * `stream: true`, one `chat.completion` once the answer is done otherwise. The answer is the
 * generation's: a client that leaves does not cancel it, and can read it on through the native API
 * (the `Lifeline-Generation-Id` header and every chunk's `id` name it).
 */
export function chatRoutes(app: FastifyInstance, options: DoorOptions, streams: SseStreams): void {
  app.post(OPENAI_PATHS.chatCompletions, async (request, reply) => {
    requireJson(request.headers["content-type"]);
    const key = idempotencyKeyOf(request.headers);
    const call = parseChatCall(request.body, options.models);
    const started = await options.starter.start(call.request, key, request.caller, request.headers.traceparent);
    const id = started.id;
    request.log.info({ generation: id, replay: started.replayed, stream: call.stream }, "chat completion accepted");
    const headers = answerHeaders(started);
    if (call.stream) {
      if (options.shutdown.aborted) throw new LifelineError("shutting_down");
      const sse = streams.open(reply, id, "", { ...SSE_HEADERS, ...headers });
      const stream = new DoorStream(sse, new ChatChunks(id, call.includeUsage), options.shutdown);
      stream.follow = new Follow(options.tails, id, START, stream);
      stream.follow.start();
      return reply;
    }
    void reply.headers(headers);
    const entries = await wholeLog(options, id, reply.raw);
    if (!entries) return reply.send(); // the client left; the answer goes on without it
    const view = foldGeneration(id, entries);
    if (view.status === "failed") {
      const error = view.error ?? { code: "model_error", message: "The model failed." };
      throw new LifelineError("generation_failed", `${error.message} (${error.code}, generation ${id})`, { generation: id, error });
    }
    if (view.status === "cancelled") throw new LifelineError("generation_cancelled", undefined, { generation: id });
    return reply.send(chatCompletionOf(view));
  });
}
