/**
 * The `Stream-Cursor` of live reads (PROTOCOL.md §10.1): the number of 20-second intervals since
 * 2024-10-09T00:00:00Z, and never one a client already holds, so a CDN never loops on a cached answer.
 */
const EPOCH_MS = Date.UTC(2024, 9, 9);
const INTERVAL_MS = 20_000;
/** The jitter added to a client's cursor that is not behind the clock: 1 s to 1 h, in intervals. */
const MAX_JITTER_MS = 3_600_000;

/** The cursor to answer with, given the client's (`cursor=`) and the time. */
export function nextStreamCursor(clientCursor: string | undefined, nowMs: number, random: () => number = Math.random): string {
  const current = Math.floor((nowMs - EPOCH_MS) / INTERVAL_MS);
  const client = clientCursor !== undefined && /^\d{1,15}$/.test(clientCursor) ? Number(clientCursor) : undefined;
  if (client === undefined || client < current) return String(current);
  const jitterMs = 1000 + Math.floor(random() * (MAX_JITTER_MS - 1000));
  return String(client + Math.max(1, Math.ceil(jitterMs / INTERVAL_MS)));
}
