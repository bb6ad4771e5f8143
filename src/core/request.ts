import { z } from "zod";
import type { GenerationRequest } from "./entries.ts";

/** Limits on a request; generous, but a request can never grow the log without bound. */
export const REQUEST_LIMITS = {
  messages: 256,
  contentChars: 200_000,
  maxTokens: 32_768,
  metadataKeys: 32,
  metadataValueChars: 512,
} as const;

export const generationRequestSchema = z
  .object({
    model: z.string().min(1).max(200),
    messages: z
      .array(
        z
          .object({
            role: z.enum(["system", "user", "assistant"]),
            content: z.string().max(REQUEST_LIMITS.contentChars),
          })
          .strict(),
      )
      .min(1)
      .max(REQUEST_LIMITS.messages),
    max_tokens: z.number().int().min(1).max(REQUEST_LIMITS.maxTokens).optional(),
    temperature: z.number().min(0).max(2).optional(),
    seed: z
      .number()
      .int()
      .min(0)
      .max(2 ** 31 - 1)
      .optional(),
    metadata: z
      .record(z.string().min(1).max(64), z.string().max(REQUEST_LIMITS.metadataValueChars))
      .refine((m) => Object.keys(m).length <= REQUEST_LIMITS.metadataKeys, {
        message: `at most ${REQUEST_LIMITS.metadataKeys} metadata keys`,
      })
      .optional(),
  })
  .strict();

export type ParsedRequest =
  | { readonly ok: true; readonly request: GenerationRequest }
  | { readonly ok: false; readonly issues: readonly { path: string; message: string }[] };

/** Validates a request body; problems come back as values with the path of each. */
export function parseGenerationRequest(body: unknown): ParsedRequest {
  const result = generationRequestSchema.safeParse(body);
  if (result.success) return { ok: true, request: result.data as GenerationRequest };
  return {
    ok: false,
    issues: result.error.issues.map((issue) => ({
      path: issue.path.map(String).join(".") || "(body)",
      message: issue.message,
    })),
  };
}
