import { LifelineError } from "../../../core/errors.ts";
import { HEADERS } from "../../../core/wire.ts";
import type { Started } from "../../start-generation.ts";
import { GENERATION_HEADER } from "./wire.ts";

/** Only JSON bodies are read, as on the native API. */
export function requireJson(contentType: string | undefined): void {
  if (contentType === undefined || !/^application\/json\s*(;|$)/i.test(contentType)) {
    throw new LifelineError("unsupported_media_type");
  }
}

/** The headers of every answer about a generation: its id, and whether an `Idempotency-Key` named it. */
export function answerHeaders(started: Pick<Started, "id" | "replayed">): Record<string, string> {
  return started.replayed ? { [GENERATION_HEADER]: started.id, [HEADERS.idempotentReplayed]: "true" } : { [GENERATION_HEADER]: started.id };
}
