import type { FastifyInstance } from "fastify";
import { LifelineError } from "../core/errors.ts";

/**
 * JSON bodies are UTF-8 (RFC 8259). Fastify's own parser decodes the bytes leniently, so a body with
 * invalid UTF-8 would reach a route with U+FFFD where the client's bytes were: a prompt changed
 * without a word. This parser refuses such a body with `invalid_utf8`, then parses JSON exactly
 * as Fastify does (prototype poisoning refused).
 */
export function installJsonBodyParser(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser("error", "error");
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "buffer" }, (request, body, done) => {
    let text: string;
    try {
      text = utf8.decode(body as Buffer);
    } catch {
      done(new LifelineError("invalid_utf8"), undefined);
      return;
    }
    parseJson(request, text, done);
  });
}
