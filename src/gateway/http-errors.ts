import type { FastifyError, FastifyInstance } from "fastify";
import { LifelineError, type ErrorCode } from "../core/errors.ts";

/** Fastify's own error codes and the stable Lifeline codes they become. */
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: "body_too_large",
  FST_ERR_CTP_INVALID_MEDIA_TYPE: "unsupported_media_type",
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: "invalid_request",
  FST_ERR_CTP_EMPTY_JSON_BODY: "invalid_json",
  FST_ERR_CTP_INVALID_JSON_BODY: "invalid_json",
};

/** Every error leaves as `{"error":{"code","message"}}` with the status of its code. */
export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError | LifelineError | Error, request, reply) => {
    const known = toLifelineError(error);
    if (known.status >= 500) request.log.error({ err: error }, "request failed");
    void reply.status(known.status).send(known.toJSON());
  });
  app.setNotFoundHandler((_request, reply) => {
    const error = new LifelineError("not_found");
    void reply.status(error.status).send(error.toJSON());
  });
}

function toLifelineError(error: FastifyError | LifelineError | Error): LifelineError {
  if (error instanceof LifelineError) return error;
  const code = "code" in error && typeof error.code === "string" ? FASTIFY_CODES[error.code] : undefined;
  if (code) return new LifelineError(code);
  // JSON.parse failures and prototype-poisoning refusals from the body parser.
  if (error instanceof SyntaxError || ("statusCode" in error && error.statusCode === 400)) {
    return new LifelineError("invalid_json", `The request body is not valid JSON: ${error.message}`);
  }
  return new LifelineError("internal");
}
