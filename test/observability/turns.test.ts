import { connect, createServer, type AddressInfo, type Socket } from "node:net";
import { performance } from "node:perf_hooks";
import { describe, expect, it } from "vitest";
import { gateReads, yieldIfLong } from "../../src/observability/turns.ts";

/** Holds the event loop for `ms`, as a step of parsing a buffered stream does. */
function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

describe("yieldIfLong", () => {
  it("many streams with data buffered share one slice per turn of the event loop: timers wait for a slice, not for a slice per stream", async () => {
    // A timer chain marks each time the loop reaches its timers; every step notes the mark it ran under.
    let turn = 0;
    let ticking = true;
    const tick = (): void => {
      turn += 1;
      if (ticking) setTimeout(tick, 0);
    };
    setTimeout(tick, 0);
    const stepsPerTurn = new Map<number, number>();
    const stream = async (): Promise<void> => {
      for (let step = 0; step < 15; step += 1) {
        for (let wait = yieldIfLong(); wait; wait = yieldIfLong()) await wait;
        busy(2);
        stepsPerTurn.set(turn, (stepsPerTurn.get(turn) ?? 0) + 1);
      }
    };
    await Promise.all(Array.from({ length: 20 }, stream));
    ticking = false;
    const total = [...stepsPerTurn.values()].reduce((a, b) => a + b, 0);
    expect(total).toBe(300);
    // A 10 ms slice holds five or six 2 ms steps; a slice of its own per stream let all twenty
    // streams take theirs between two timers (over a hundred steps).
    expect(Math.max(...stepsPerTurn.values())).toBeLessThanOrEqual(8);
    // And every stream went on: the turns are shared, not handed to the first streams only.
    expect(stepsPerTurn.size).toBeGreaterThan(30);
  });
});

describe("gateReads", () => {
  /** A real TCP connection on 127.0.0.1: the client's socket flows into `received`. */
  async function connection(): Promise<{ client: Socket; peer: Socket; received: Buffer[]; close: () => Promise<void> }> {
    const server = createServer();
    const accepted = new Promise<Socket>((resolve) => server.once("connection", resolve));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const client = connect((server.address() as AddressInfo).port, "127.0.0.1");
    const received: Buffer[] = [];
    client.on("data", (chunk: Buffer) => received.push(chunk));
    const peer = await accepted;
    return {
      client,
      peer,
      received,
      close: async () => {
        client.destroy();
        peer.destroy();
        await new Promise((resolve) => server.close(resolve));
      },
    };
  }

  /** Spends the current slice, then asks for the next turn (what a stream with a backlog does). */
  function spendSlice(): Promise<void> {
    let turn = yieldIfLong();
    while (turn === undefined) {
      busy(1);
      turn = yieldIfLong();
    }
    return turn;
  }

  it("holds a flowing socket from the moment the slice is spent until the next turn, and what came meanwhile is read then, in order", async () => {
    const { client, peer, received, close } = await connection();
    const ungate = gateReads(client);
    try {
      await spendSlice(); // a turn in which nothing is held, so the slice starts afresh
      const turn = spendSlice();
      expect(client.readableFlowing).toBe(false);
      peer.write("one,");
      peer.write("two");
      // Several turns of the event loop pass; the data arrives while the socket is held and is read
      // once the turn lets it go.
      await turn;
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(client.readableFlowing).toBe(true);
      expect(Buffer.concat(received).toString()).toBe("one,two");
    } finally {
      ungate();
      await close();
    }
  });

  it("lets a held socket go at once when it is ungated, and leaves alone a socket its reader paused", async () => {
    const first = await connection();
    const second = await connection();
    const ungateFirst = gateReads(first.client);
    const ungateSecond = gateReads(second.client);
    try {
      second.client.pause(); // its reader's backpressure
      await spendSlice();
      const turn = spendSlice();
      expect(first.client.readableFlowing).toBe(false);
      ungateFirst();
      expect(first.client.readableFlowing).toBe(true);
      await turn;
      await new Promise((resolve) => setImmediate(resolve));
      // The turn released nothing of the second: its reader paused it, and it stays paused.
      expect(second.client.readableFlowing).toBe(false);
    } finally {
      ungateFirst();
      ungateSecond();
      await first.close();
      await second.close();
    }
  });
});
