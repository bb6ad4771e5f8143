/**
 * JSON with object keys sorted, so that two equal values always give the same string. The engine
 * uses it to recognise an entry that is re-sent at its offset (an idempotent append).
 */
export function canonicalJson(value: unknown): string {
  // Deltas are nearly every entry: their one shape is written out directly, keys in order.
  if (isPlainDelta(value)) return `{"attempt":${value.attempt},"text":${JSON.stringify(value.text)},"type":"delta"}`;
  return JSON.stringify(sortKeys(value));
}

function isPlainDelta(value: unknown): value is { readonly attempt: number; readonly text: string } {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return false;
  const entry = value as Record<string, unknown>;
  return (
    entry.type === "delta" &&
    typeof entry.text === "string" &&
    typeof entry.attempt === "number" &&
    Number.isFinite(entry.attempt) &&
    Object.keys(entry).length === 3
  );
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) {
      const v = (value as Record<string, unknown>)[key];
      if (v !== undefined) out[key] = sortKeys(v);
    }
    return out;
  }
  return value;
}
