import type { Duplex } from "node:stream";
import { performance } from "node:perf_hooks";

/** How long work chained through promises may hold the event loop before it lets timers and I/O run. */
const SLICE_MS = 10;

/**
 * When the current slice began: the last time the loop came round to the yielders. It measures
 * wall time since then, not work: after a quiet spell the first to ask waits one turn, so under a
 * steady load the yielders share about one `setImmediate` per slice.
 */
let sliceStart = performance.now();
/** The next turn every yielder waits for: one for all, so the slice starts once per turn. */
let turn: Promise<void> | undefined;
/** How long the held sockets' reads may take, at the start of a turn, before the rest wait for the next. */
const RELEASE_MS = 5;
/**
 * The sockets whose reads wait while the slice is spent (decision 050), with how many gated them: a
 * keep-alive socket can serve the next response before the last one's reader has let it go.
 */
const gated = new Map<Duplex, number>();
/** Sockets paused by the gate, in the order they are to flow again. */
const held = new Set<Duplex>();

/**
 * The next turn of the event loop when the current stretch of promise-chained work has run longer
 * than a slice; `undefined` (one clock read) when it has not. A stream whose data is already
 * buffered is read through promises that never wait for I/O; without a turn now and then, timers (a
 * lease renewal, a coalescing flush) and other sockets would wait until the buffer ran dry.
 *
 * Every yielder waits for the same turn, and the slice starts once per turn: a hundred streams with
 * data buffered share one slice per turn instead of each taking one of its own in the same turn
 * (decision 044). So a caller asks again right before its work, and waits for the next turn when
 * the streams resumed before it have spent the slice:
 *
 *     for (let turn = yieldIfLong(); turn; turn = yieldIfLong()) await turn;
 */
export function yieldIfLong(): Promise<void> | undefined {
  if (performance.now() - sliceStart < SLICE_MS) return undefined;
  return nextTurn();
}

/** The next turn, the one every yielder waits for; asking for it holds the gated sockets that flow. */
function nextTurn(): Promise<void> {
  if (turn === undefined) {
    hold();
    turn = new Promise((resolve) =>
      setImmediate(() => {
        turn = undefined;
        sliceStart = performance.now();
        resolve();
        releaseHeld(sliceStart);
      }),
    );
  }
  return turn;
}

/** Settles once the last read asked through {@link readInTurn} has been parsed. */
let lastRead: Promise<void> = Promise.resolve();

/**
 * Asks for a read of a stream whose socket Node parses as soon as it flows again (a response of
 * Node's HTTP client: its `read()` resumes the socket, and what the socket holds is parsed in the
 * next tick, before any code of ours runs). The reads of every such stream are asked for one at a
 * time, each once the one before it has been parsed and only while the slice lasts, so that a
 * hundred streams asking in one turn do not have a hundred sockets parsed before anyone looks at
 * the clock (decision 050).
 */
export async function readInTurn<T>(read: () => Promise<T>): Promise<T> {
  const before = lastRead;
  let parsed!: () => void;
  lastRead = new Promise((resolve) => (parsed = resolve));
  try {
    await before;
    for (let turn = yieldIfLong(); turn; turn = yieldIfLong()) await turn;
  } catch (error) {
    parsed();
    throw error;
  }
  try {
    return read();
  } finally {
    // A tick queued now runs after the one in which the resumed socket is parsed.
    process.nextTick(parsed);
  }
}

/**
 * Lets `socket`'s reads wait while the slice is spent: the socket of a model's response, parsed by
 * Node's HTTP client as it arrives, before any code of ours runs. Without this, one poll phase in
 * which a thousand such sockets have data parses all of it, however the work after the parse is
 * sliced. When a yielder finds the slice spent, every gated socket that is flowing is paused (what
 * arrives meanwhile stays in its buffer, unparsed) until the next turn, where they flow again a few
 * at a time (decision 050). Returns the call that ends the gating, which lets the socket flow if the
 * gate holds it: call it when the response is done with, before the socket may serve another.
 */
export function gateReads(socket: Duplex): () => void {
  gated.set(socket, (gated.get(socket) ?? 0) + 1);
  let open = true;
  return () => {
    if (!open) return;
    open = false;
    const left = (gated.get(socket) ?? 1) - 1;
    if (left > 0) {
      gated.set(socket, left);
      return;
    }
    gated.delete(socket);
    if (held.delete(socket)) socket.resume();
  };
}

function hold(): void {
  for (const socket of gated.keys()) {
    if (socket.readableFlowing !== true) continue; // paused already (the parser's backpressure)
    socket.pause();
    held.delete(socket);
    held.add(socket);
  }
}

/**
 * Lets the held sockets flow again at the start of a turn, one at a time (each one's buffered data
 * is parsed in the tick its resume schedules, before the next is let go), while less than
 * {@link RELEASE_MS} has passed since `since`, and at least one; the yielders have the rest of the
 * slice. The sockets still held wait for the next turn, which is asked for.
 */
function releaseHeld(since: number): void {
  for (const socket of held) {
    held.delete(socket);
    // Node's HTTP client resumes a socket too (when its response is read, or its message ends):
    // one flowing already takes no turn of the release.
    if (socket.readableFlowing === true) continue;
    socket.resume();
    break;
  }
  if (held.size > 0) process.nextTick(releaseNext, since);
}

function releaseNext(since: number): void {
  if (performance.now() - since < RELEASE_MS) releaseHeld(since);
  else void nextTurn();
}

/**
 * Waits, when the slice is spent, for a turn in which it is not: the loop above as one call, for
 * work done one item at a time where a promise per item costs nothing (a fold per log).
 */
export async function turnWhenLong(): Promise<void> {
  for (let turn = yieldIfLong(); turn; turn = yieldIfLong()) await turn;
}
