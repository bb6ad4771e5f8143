import { describe, expect, it } from "vitest";
import { wsEntryFrameHead, wsEntryFrameRest, type WsServerFrame } from "../../src/core/wire.ts";

describe("a WebSocket entry frame built in two halves", () => {
  it("is the JSON of the frame, whatever the subscription and the cursor hold", () => {
    const entry = { offset: 7, type: "delta", at: "2026-11-25T10:00:00.000Z", attempt: 2, text: 'a "quoted" \\ line\nbreak \u2028' };
    for (const sub of ["s1", 'a"b', "back\\slash", "~!@#$%^&*()"]) {
      for (const cursor of ["7", "2:7"]) {
        const text = wsEntryFrameHead(sub) + wsEntryFrameRest(cursor, JSON.stringify(entry));
        const frame: WsServerFrame = { type: "entry", sub, cursor, entry };
        expect(JSON.parse(text)).toEqual(frame);
        expect(text).toBe(JSON.stringify(frame));
      }
    }
  });
});
