import { isTerminal, type Entry } from "../../../core/entries.ts";
import { formatOffset, type StreamOffset } from "../../../core/stream-offsets.ts";
import type { Engine } from "../../../engine/port.ts";
import type { ReadSource, SourceFailure, SourceHead, SourcePage } from "./read-source.ts";

/** Entries one page reads at most; the byte limit usually ends it first. */
const PAGE_ENTRIES = 500;

/**
 * A generation's log as a read-only JSON stream: one message per entry, exactly as the log holds
 * it. Its offsets name the attempt of the entry they follow (decision 027): before serving what
 * follows an offset, the entry there is read again, and when another attempt's entry stands there
 * now (a failover lost it) the read fails with `stream_reset` instead of serving other data.
 */
export class GenerationSource implements ReadSource {
  #seen = 0;

  constructor(
    private readonly engine: Engine,
    private readonly id: string,
  ) {}

  async head(): Promise<SourceHead | SourceFailure> {
    const head = await this.engine.head(this.id);
    if (!head) return { kind: "fail", code: "stream_not_found", message: "No generation has this id." };
    const [last] = await this.engine.read(this.id, head.lastOffset - 1, 1);
    this.#seen = head.lastOffset;
    return headOf(this.id, last ? formatOffset(last.offset, last.attempt) : formatOffset(0), head.terminal);
  }

  async page(after: StreamOffset | undefined, maxBytes: number): Promise<SourcePage | SourceFailure> {
    const from = after?.position ?? 0;
    const head = await this.engine.head(this.id);
    if (!head) return { kind: "fail", code: "stream_not_found", message: "No generation has this id." };
    // The entry the offset follows is read again with the page: it must still be the one served.
    const entries = await this.engine.read(this.id, Math.max(0, from - 1), PAGE_ENTRIES + 1);
    let anchor: Entry | undefined;
    if (from > 0) {
      anchor = entries.shift();
      if (anchor === undefined || anchor.offset !== from) {
        // The log is shorter than the offset (a failover lost entries): nothing to serve until the
        // writer restores them, or another attempt writes there, which the check below then refuses.
        this.#seen = head.lastOffset;
        const offset = formatOffset(from, after?.attempt ?? 0);
        return { kind: "page", head: headOf(this.id, offset, false), chunks: [], nextOffset: offset, upToDate: true, closed: false };
      }
      if (anchor.attempt !== (after?.attempt ?? 0)) return { kind: "fail", code: "stream_reset" };
    }
    const chunks: Buffer[] = [];
    let bytes = 0;
    let last = anchor;
    for (const entry of entries) {
      const chunk = Buffer.from(JSON.stringify(entry), "utf8");
      if (chunks.length > 0 && bytes + chunk.length > maxBytes) break;
      chunks.push(chunk);
      bytes += chunk.length;
      last = entry;
    }
    const lastOffset = last?.offset ?? 0;
    this.#seen = Math.max(head.lastOffset, lastOffset);
    const nextOffset = last ? formatOffset(last.offset, last.attempt) : formatOffset(0);
    const upToDate = lastOffset >= head.lastOffset;
    const closed = upToDate && (head.terminal || (last !== undefined && isTerminal(last)));
    return { kind: "page", head: headOf(this.id, nextOffset, closed), chunks, nextOffset, upToDate, closed };
  }

  wait(signal: AbortSignal): Promise<void> {
    return this.engine.wait(this.id, this.#seen, signal);
  }

  /** Generation logs have no TTL of their own. */
  async touch(): Promise<void> {}
}

function headOf(id: string, tailOffset: string, closed: boolean): SourceHead {
  return { kind: "head", contentType: "application/json", json: true, tag: id, tailOffset, closed };
}
