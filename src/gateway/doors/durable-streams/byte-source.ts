import { formatOffset, type StreamOffset } from "../../../core/stream-offsets.ts";
import type { StoredStream } from "../../../engine/streams/port.ts";
import { isJsonStream } from "../../../engine/streams/stream-rules.ts";
import type { Streams } from "../../../engine/streams/streams.ts";
import type { ReadSource, SourceFailure, SourceHead, SourcePage } from "./read-source.ts";

/** An ordinary stream of the stream store, read through the door. */
export class ByteSource implements ReadSource {
  #revision: string | undefined;

  constructor(
    private readonly streams: Streams,
    private readonly name: string,
  ) {}

  async head(): Promise<SourceHead | SourceFailure> {
    const found = await this.#lookup();
    return "kind" in found ? found : headOf(found);
  }

  async page(after: StreamOffset | undefined, maxBytes: number): Promise<SourcePage | SourceFailure> {
    const found = await this.#lookup();
    if ("kind" in found) return found;
    const { record } = found;
    const from = after?.position ?? 0;
    if ((after !== undefined && after.attempt !== 0) || from > record.tail) {
      return { kind: "fail", code: "invalid_offset", message: "The offset is past this stream's tail, or not one of its offsets." };
    }
    // Chunks committed after the record was read wait for the next page: the page matches the record.
    const chunks =
      from === record.tail ? [] : (await this.streams.read(this.name, from, maxBytes)).filter((c) => c.position <= record.tail);
    const last = chunks.at(-1)?.position ?? from;
    const upToDate = last === record.tail;
    return {
      kind: "page",
      head: headOf(found),
      chunks: chunks.map((c) => c.data),
      nextOffset: formatOffset(last),
      upToDate,
      closed: upToDate && record.closed,
    };
  }

  async wait(signal: AbortSignal): Promise<void> {
    if (this.#revision !== undefined) await this.streams.wait(this.name, this.#revision, signal);
  }

  touch(): Promise<void> {
    return this.streams.touch(this.name);
  }

  async #lookup(): Promise<StoredStream | SourceFailure> {
    const found = await this.streams.lookup(this.name);
    if (found.kind === "notFound") return { kind: "fail", code: "stream_not_found" };
    if (found.kind === "gone") return { kind: "fail", code: "stream_gone" };
    this.#revision = found.stored.revision;
    return found.stored;
  }
}

function headOf(stored: StoredStream): SourceHead {
  const { record } = stored;
  return {
    kind: "head",
    contentType: record.contentType,
    json: isJsonStream(record),
    tag: record.incarnation,
    tailOffset: formatOffset(record.tail),
    closed: record.closed,
    ...(record.ttlSeconds !== undefined ? { ttlSeconds: record.ttlSeconds } : {}),
    ...(record.expiresAt !== undefined ? { expiresAt: record.expiresAt } : {}),
  };
}
