import type { FastifyError, FastifyInstance, FastifyReply } from "fastify";
import { STATUS_CODES } from "node:http";
import type { Socket } from "node:net";
import { LifelineError, type ApiErrorCode } from "../core/errors.ts";
import { ROUTE_PATHS } from "../core/routes.ts";

/** Fastify's own error codes and the stable Lifeline codes they become. */
const FASTIFY_CODES: Record<string, ApiErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: "body_too_large",
  FST_ERR_CTP_INVALID_MEDIA_TYPE: "unsupported_media_type",
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: "invalid_request",
  FST_ERR_CTP_EMPTY_JSON_BODY: "invalid_json",
  FST_ERR_CTP_INVALID_JSON_BODY: "invalid_json",
  // Refused by the router before any route runs (`frameworkErrors`).
  FST_ERR_BAD_URL: "invalid_url",
  FST_ERR_MAX_PARAM_LENGTH: "invalid_url",
};

/** Client statuses of errors that carry only a status, and their codes. */
const STATUS_ONLY_CODES: Record<number, ApiErrorCode> = {
  400: "invalid_request",
  403: "not_found",
  404: "not_found",
  412: "precondition_failed",
  416: "range_not_satisfiable",
};

/**
 * The static files' route (`@fastify/static` under the pages' prefix). Its `send` answers 400 for a
 * path that cannot name a file (a NUL byte, a bad escape) and 403 for one that climbs out of the
 * folder: neither names a page, so both are `not_found` there.
 */
const STATIC_FILES_ROUTE = `${ROUTE_PATHS.chatPage}*`;

/**
 * Every error leaves as `{"error":{"code","message"}}` with the status of its code: those of the
 * routes, of the body parser, of the router (a malformed URL) and of Node's HTTP parser (a request
 * that is not HTTP, headers too large or too slow), which otherwise answer in shapes of their own.
 */
export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError | LifelineError | Error, request, reply) => {
    const known = toLifelineError(error, request.routeOptions.url === STATIC_FILES_ROUTE);
    if (known.status >= 500) request.log.error({ err: error }, "request failed");
    sendError(reply, known);
  });
  app.setNotFoundHandler((_request, reply) => sendError(reply, new LifelineError("not_found")));
}

/** Fastify's `frameworkErrors` option: errors of the router, before any hook or route runs. */
export function answerFrameworkError(error: FastifyError, _request: unknown, reply: FastifyReply): void {
  sendError(reply, toLifelineError(error));
}

/**
 * Fastify's `clientErrorHandler` option: Node's HTTP parser refused the request before there is a
 * request object, so the answer is written to the socket as it is, then the socket closes.
 */
export function answerClientError(error: Error & { code?: string }, socket: Socket): void {
  if (error.code === "ECONNRESET" || socket.destroyed) return;
  let known: LifelineError;
  if (error.code === "HPE_HEADER_OVERFLOW") known = new LifelineError("headers_too_large");
  else if (error.code === "ERR_HTTP_REQUEST_TIMEOUT") known = new LifelineError("request_timeout");
  else known = new LifelineError("invalid_request", "The request is not valid HTTP/1.1.");
  // Not into a response already under way on this connection (an event stream): its body would break.
  const inProgress = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent === true;
  if (socket.writable && !inProgress) socket.write(rawHttpAnswer(known));
  socket.destroy(error);
}

/** A complete HTTP/1.1 response carrying `error`, for a socket that no framework answers on (a 429 says when to come back, as {@link sendError}'s). */
export function rawHttpAnswer(error: LifelineError): string {
  const body = JSON.stringify(error.toJSON());
  const retryAfter = error.status === 429 ? `retry-after: ${error.retryAfterSeconds ?? 1}\r\n` : "";
  return (
    `HTTP/1.1 ${error.status} ${STATUS_CODES[error.status] ?? ""}\r\nconnection: close\r\n${retryAfter}` +
    `content-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  );
}

function sendError(reply: FastifyReply, error: LifelineError): void {
  // Every 429 says when to come back; the rate limiter sets its own, the other limits a second.
  if (error.status === 429 && !reply.hasHeader("retry-after")) void reply.header("retry-after", String(error.retryAfterSeconds ?? 1));
  void reply.status(error.status).send(error.toJSON());
}

function toLifelineError(error: FastifyError | LifelineError | Error, staticFile = false): LifelineError {
  if (error instanceof LifelineError) return error;
  const code = "code" in error && typeof error.code === "string" ? FASTIFY_CODES[error.code] : undefined;
  if (code) return new LifelineError(code);
  // JSON.parse failures and prototype-poisoning refusals from the body parser.
  if (error instanceof SyntaxError) return new LifelineError("invalid_json", `The request body is not valid JSON: ${error.message}`);
  const status = "statusCode" in error && typeof error.statusCode === "number" ? error.statusCode : undefined;
  if (staticFile && (status === 400 || status === 403)) return new LifelineError("not_found");
  const byStatus = status === undefined ? undefined : STATUS_ONLY_CODES[status];
  if (byStatus) return new LifelineError(byStatus);
  return new LifelineError("internal");
}
