import type { StreamChunk } from "./port.ts";

/** The first chunk, then as many more as fit in `maxBytes` in all: one read's page. */
export function takeChunks(chunks: readonly StreamChunk[], maxBytes: number): StreamChunk[] {
  const page: StreamChunk[] = [];
  let bytes = 0;
  for (const chunk of chunks) {
    if (page.length > 0 && bytes + chunk.data.length > maxBytes) break;
    page.push(chunk);
    bytes += chunk.data.length;
  }
  return page;
}
