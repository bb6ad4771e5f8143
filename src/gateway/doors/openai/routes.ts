import type { FastifyInstance } from "fastify";
import { SseStreams } from "../../sse-streams.ts";
import type { DoorOptions } from "../door-options.ts";
import { chatRoutes } from "./chat-routes.ts";
import { openAiErrorBody } from "./error-body.ts";
import { responseRoutes } from "./response-routes.ts";

/**
 * The OpenAI-compatible door (docs/protocols/openai.md): `POST /v1/chat/completions` and the
 * Responses API, each a view of ordinary generations, so a client of the official SDK changes only
 * its `baseURL`. Registered in a scope of its own, whose errors carry OpenAI's extra fields.
 */
export function openAiRoutes(app: FastifyInstance, options: DoorOptions): void {
  const streams = new SseStreams(options);
  void app.register(async (scope) => {
    scope.addHook("onSend", openAiErrorBody);
    chatRoutes(scope, options, streams);
    responseRoutes(scope, options, streams);
  });
}
