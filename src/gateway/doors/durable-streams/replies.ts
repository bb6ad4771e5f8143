import type { FastifyReply } from "fastify";
import { LifelineError } from "../../../core/errors.ts";
import type { SourceFailure } from "./read-source.ts";

/** An error in Lifeline's shape, with the protocol's headers that go with it (`Stream-Closed`, …). */
export function sendStreamError(reply: FastifyReply, error: LifelineError, headers: Record<string, string> = {}): void {
  void reply.code(error.status).headers(headers).send(error.toJSON());
}

export function failureError(failure: SourceFailure): LifelineError {
  return new LifelineError(failure.code, failure.message);
}
