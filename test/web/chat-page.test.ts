import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, test } from "vitest";
import type { ChatMessage } from "../../src/core/entries.ts";
import { expectExactAnswer } from "../support/invariants.ts";
import { ChatSession, SharedChat, simAnswer } from "./support/chat-session.ts";

describe("the chat page in a real browser", () => {
  // One Chromium and one server for the file; the test that kills its server has its own.
  const shared = SharedChat.use();

  test("a two-turn conversation sends the whole conversation and shows each answer byte for byte", async (ctx) => {
    const chat = await ChatSession.open(ctx, { shared });
    const question = "What does Lifeline do?";
    const followUp = "And how does a client resume?";

    await chat.send(question);
    const first = await chat.waitForEnd(0);
    expect(first.status).toBe("completed");
    const firstOnServer = await chat.generation(first.id);
    expect(firstOnServer.status).toBe("completed");
    expect(first.text).toBe(firstOnServer.text);
    expect(first.text).toBe(simAnswer([{ role: "user", content: question }]));

    await chat.send(followUp);
    const second = await chat.waitForEnd(1);
    expect(second.status).toBe("completed");
    expect(second.id).not.toBe(first.id);

    const conversation: ChatMessage[] = [
      { role: "user", content: question },
      { role: "assistant", content: first.text },
      { role: "user", content: followUp },
    ];
    const log = await chat.log(second.id);
    const created = log[0];
    expect(created?.type).toBe("created");
    expect(created?.type === "created" ? created.request.messages : undefined).toEqual(conversation);
    expect(second.text).toBe((await chat.generation(second.id)).text);
    expect(second.text).toBe(simAnswer(conversation));
    expectExactAnswer(log, second.text);

    expect(await chat.userMessages()).toEqual([question, followUp]);
    expect(await chat.connectionStates()).toEqual(["connecting", "live", "idle", "connecting", "live", "idle"]);
    expect(chat.pageErrors).toEqual([]);
  });

  test("a reload mid-answer shows the same conversation and the answer continues exactly", async (ctx) => {
    const chat = await ChatSession.open(ctx, { shared });
    const question = "Tell me about durable logs.";

    await chat.send(question);
    const partial = await chat.waitForPartialAnswer(0, 20);
    expect((await chat.generation(partial.id)).status).toBe("running");
    expect(await chat.connectionStates()).toEqual(["connecting", "live"]);
    const stored = await chat.storedTurns();
    expect(stored[1]).toMatchObject({ generation: partial.id, status: "streaming" });
    expect(stored[1]?.lastOffset).toBeGreaterThan(1);

    await chat.reload();
    await chat.expectExactEnd(0, partial.id, question);

    expect(await chat.userMessages()).toEqual([question]);
    // After the reload the page resumed the stream it had, then went idle at the terminal entry.
    expect(await chat.connectionStates()).toEqual(["connecting", "resumed", "idle"]);
    expect(chat.pageErrors).toEqual([]);
  });

  test("where the network lets neither event streams nor WebSockets through, the answer arrives over long-poll, exact", async (ctx) => {
    const chat = await ChatSession.open(ctx, { shared, network: { eventStreams: "refuse", refuseWebSockets: true } });
    const question = "Which way did this answer come?";

    await chat.send(question);
    // Finding the way through takes a few attempts with backoff: the answer may be over by then.
    const { id } = await chat.waitForEnd(0);
    await chat.expectExactEnd(0, id, question);

    expect(await chat.transport()).toBe("long-poll");
    expect(chat.proxy?.seen.events).toBe(1); // left at the proxy's first refusal
    expect(chat.proxy?.seen.upgrade).toBe(3); // three WebSockets that could not open
    expect(chat.proxy?.seen.poll).toBeGreaterThan(0);

    // The next answer goes straight to long-poll, and streams over it: shown in part, then whole.
    const pollsBefore = chat.proxy?.seen.poll ?? 0;
    const followUp = "And the next one?";
    await chat.send(followUp);
    const partial = await chat.waitForPartialAnswer(1, 20);
    const second = await chat.waitForEnd(1);
    expect(second.id).toBe(partial.id);
    expect(second.text).toBe((await chat.generation(second.id)).text);
    expectExactAnswer(await chat.log(second.id), second.text);
    expect(chat.proxy?.seen.poll).toBeGreaterThan(pollsBefore + 1);
    expect([chat.proxy?.seen.events, chat.proxy?.seen.upgrade]).toEqual([1, 3]);
    expect(await chat.connectionStates()).toEqual(["connecting", "live", "idle", "connecting", "live", "idle"]);
    expect(chat.pageErrors).toEqual([]);
  });

  test("Stop cancels the answer in progress and the page shows what was written before it", async (ctx) => {
    const chat = await ChatSession.open(ctx, { shared });

    await chat.send("Say something long.");
    const partial = await chat.waitForPartialAnswer(0, 20);
    await chat.stop();
    const stopped = await chat.waitForEnd(0);
    expect(stopped.status).toBe("cancelled");
    const onServer = await chat.generation(partial.id);
    expect(onServer.status).toBe("cancelled");
    expect(stopped.text).toBe(onServer.text);
    expect(stopped.text.length).toBeGreaterThanOrEqual(partial.text.length);
    expect(simAnswer([{ role: "user", content: "Say something long." }]).startsWith(stopped.text)).toBe(true);
    expectExactAnswer(await chat.log(partial.id), stopped.text, "cancelled");
    expect(await chat.statusLine(0)).toBe("Stopped.");
    expect(await chat.canStop()).toBe(false);
    expect(await chat.canSend()).toBe(true);
    expect(chat.pageErrors).toEqual([]);
  });

  test("a server killed mid-answer and restarted on the same port: the page's answer finishes byte for byte", async (ctx) => {
    const chat = await ChatSession.open(ctx);
    const question = "What happens when the server dies?";

    await chat.send(question);
    const partial = await chat.waitForPartialAnswer(0, 20);
    await chat.killServer();
    await chat.waitForConnectionState("reconnecting");
    expect((await chat.shown(0)).status).toBe("streaming");

    await chat.restartServer();
    const { done, onServer } = await chat.expectExactEnd(0, partial.id, question);
    // The dead worker's attempt was taken over by the new process's worker.
    expect(onServer.attempts).toBe(2);

    expect(await chat.connectionStates()).toEqual(["connecting", "live", "reconnecting", "resumed", "idle"]);
    expect(chat.pageErrors).toEqual([]);

    // The answer's Inspect link replays its log: two calls, the second a takeover, and the text.
    const inspect = await chat.openInspect(0);
    await inspect.waitForStatus("completed");
    expect([await inspect.field("calls-count"), await inspect.field("takeovers"), await inspect.field("retries")]).toEqual(["2", "1", "0"]);
    expect(await inspect.callsEndedBy()).toEqual(["takeover", "completed"]);
    expect(await inspect.field("text")).toBe(done.text);
    await inspect.screenshot("inspect-after-restart.png");
    // Replayed up to entry 2, the answer had just started and held no text.
    await inspect.replayUntil(2);
    await inspect.waitForStatus("running");
    expect([await inspect.field("entries"), await inspect.field("text")]).toEqual([`2 of ${onServer.lastOffset}`, ""]);
    // No errors in any tab, the inspect tab's included from its first script on.
    expect(inspect.errors).toEqual([]);
  });

  test("the browser goes offline mid-answer: the page reconnects, resumes and the text is exact", async (ctx) => {
    const chat = await ChatSession.open(ctx, { shared });
    const question = "What if my network drops?";

    await chat.send(question);
    const partial = await chat.waitForPartialAnswer(0, 20);
    await chat.setOffline(true);
    await chat.waitForConnectionState("reconnecting");
    const offline = await chat.shown(0);
    await sleep(1500);
    // Still offline: the answer went on without the page, which shows what it had and nothing more.
    expect(await chat.shown(0)).toEqual(offline);
    expect(offline.status).toBe("streaming");
    await chat.setOffline(false);

    await chat.expectExactEnd(0, partial.id, question);

    expect(await chat.connectionStates()).toEqual(["connecting", "live", "reconnecting", "resumed", "idle"]);
    expect(chat.pageErrors).toEqual([]);
  });

  test("a second tab opened mid-answer follows the same answer live, both end with the exact text, and it follows the next one too", async (ctx) => {
    const chat = await ChatSession.open(ctx, { shared });
    const question = "Can two tabs watch one answer?";

    await chat.send(question);
    const partial = await chat.waitForPartialAnswer(0, 20);
    const second = await chat.openTab();
    // Live in the second tab: it shows the answer while it is still being written.
    const secondPartial = await second.waitForPartialAnswer(0, 1);
    expect(secondPartial.id).toBe(partial.id);
    expect(await second.userMessages()).toEqual([question]);

    const [firstDone, secondDone] = await Promise.all([chat.waitForEnd(0), second.waitForEnd(0)]);
    const expected = simAnswer([{ role: "user", content: question }]);
    expect(secondPartial.text.length).toBeLessThan(expected.length);
    const onServer = await chat.generation(partial.id);
    expect(onServer.status).toBe("completed");
    for (const done of [firstDone, secondDone]) {
      expect(done).toEqual({ id: partial.id, status: "completed", text: onServer.text });
    }
    expect(onServer.text).toBe(expected);
    expectExactAnswer(await chat.log(partial.id), onServer.text);

    expect(await chat.connectionStates()).toEqual(["connecting", "live", "idle"]);
    // The second tab picked up an answer under way, as a reload does.
    expect(await second.connectionStates()).toEqual(["connecting", "resumed", "idle"]);

    // The idle second tab takes over what the first one sends next, and follows that answer too.
    const followUp = "And a follow-up?";
    await chat.send(followUp);
    const [firstNext, secondNext] = await Promise.all([chat.waitForEnd(1), second.waitForEnd(1)]);
    const nextText = simAnswer([
      { role: "user", content: question },
      { role: "assistant", content: expected },
      { role: "user", content: followUp },
    ]);
    expect(firstNext).toMatchObject({ status: "completed", text: nextText });
    expect(secondNext).toEqual(firstNext);
    expect(await second.userMessages()).toEqual([question, followUp]);
    expect(chat.pageErrors).toEqual([]);
    expect(second.pageErrors).toEqual([]);
  });
});
