import type { EntryBody, GenerationRequest } from "../core/entries.ts";
import type { CreateOptions } from "./port.ts";

/**
 * The `created` entry a log starts with: the request, the tenant it belongs to when it has one, and
 * the trace context of the create span when tracing is on.
 */
export function createdEntry(request: GenerationRequest, options: CreateOptions): EntryBody {
  return {
    type: "created",
    attempt: 0,
    request,
    ...(options.tenant === undefined ? {} : { tenant: options.tenant }),
    ...(options.traceparent === undefined ? {} : { traceparent: options.traceparent }),
  };
}

/**
 * The name an `Idempotency-Key` is stored under: one namespace per tenant, so two tenants may use
 * the same key and never meet (a header value cannot hold a line break, so the two parts cannot mix).
 */
export function idempotencyName(options: CreateOptions): string | undefined {
  if (options.idempotencyKey === undefined) return undefined;
  return options.tenant === undefined ? options.idempotencyKey : `${options.tenant}\n${options.idempotencyKey}`;
}
