import type { StreamControl } from "./stream-headers.ts";

/**
 * SSE frames of the Durable Streams door: a `data` event per page of a stream, then a `control`
 * event. Data is split on `\r\n|\r|\n` into `data:` lines, so no payload can end an event early.
 */
export function sseDataEvent(payload: string): string {
  return `event: data\n${payload
    .split(/\r\n|\r|\n/)
    .map((line) => `data:${line}`)
    .join("\n")}\n\n`;
}

export function sseControlEvent(control: StreamControl): string {
  return `event: control\ndata:${JSON.stringify(control)}\n\n`;
}
