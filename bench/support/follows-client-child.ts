/**
 * The clients of `bench/follows.ts`: a child process that opens many idle follows on a gateway
 * (SSE responses, or subscriptions multiplexed on WebSockets), reports how long they took to
 * open (each counts once its first entry arrived), holds them, and closes them all on demand.
 */
import { connect } from "node:net";
import { WebSocket } from "ws";
import { routes } from "../../src/core/routes.ts";
import type { WsServerFrame } from "../../src/core/wire.ts";
import type { FromClients, OpenPlan, ToClients } from "./follows-protocol.ts";

function send(message: FromClients): void {
  process.send?.(message);
}

/** Whatever can be closed at the end: one SSE request or one WebSocket. */
type Held = { close(): Promise<void> };
let held: Held[] = [];

process.on("message", (message: ToClients) => {
  if (message.type === "exit") process.exit(0);
  const work = message.type === "open" ? open(message.plan) : closeAll();
  work.then(send, (error: unknown) =>
    send({ type: "error", message: error instanceof Error ? (error.stack ?? error.message) : String(error) }),
  );
});
send({ type: "ready" });

async function open(plan: OpenPlan): Promise<FromClients> {
  const started = performance.now();
  const cpu = process.cpuUsage();
  const failures: string[] = [];
  // Each unit is one SSE follow, or one WebSocket with its subscriptions; `size` follows each.
  const units =
    plan.transport === "sse"
      ? plan.ids.map((id) => ({ size: 1, start: () => openSse(plan.baseUrl, id) }))
      : chunks(plan.ids, plan.subsPerSocket).map((ids) => ({ size: ids.length, start: () => openSocket(plan.baseUrl, ids) }));
  let next = 0;
  let inFlight = 0;
  await new Promise<void>((resolve) => {
    let pending = units.length;
    if (pending === 0) resolve();
    const pump = (): void => {
      while (next < units.length && inFlight < plan.window) {
        const unit = units[next++]!;
        inFlight += unit.size;
        unit
          .start()
          .then(
            (h) => held.push(h),
            (error: unknown) => failures.push(error instanceof Error ? error.message : String(error)),
          )
          .finally(() => {
            inFlight -= unit.size;
            pending -= 1;
            if (pending === 0) resolve();
            else pump();
          });
      }
    };
    pump();
  });
  const ms = performance.now() - started;
  const used = process.cpuUsage(cpu);
  return {
    type: "opened",
    ms,
    cpuMs: (used.user + used.system) / 1000,
    follows: plan.ids.length - failures.length,
    failures: failures.length,
    ...(failures[0] === undefined ? {} : { firstFailure: failures[0] }),
  };
}

async function closeAll(): Promise<FromClients> {
  const all = held;
  held = [];
  await Promise.all(all.map((h) => h.close()));
  return { type: "closed" };
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * One SSE follow on a connection of its own (as browsers on separate machines would hold), open
 * once its first entry (`created`) has arrived. A plain socket with a hand-written request rather
 * than an HTTP client: the clients' CPU must not be what the bench measures.
 */
function openSse(baseUrl: string, id: string): Promise<Held> {
  const url = new URL(routes.events(id), baseUrl);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname);
    socket.setEncoding("latin1");
    let seen = "";
    let opened = false;
    socket.on("connect", () => {
      socket.write(`GET ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nAccept: text/event-stream\r\n\r\n`);
    });
    socket.on("data", (chunk: string) => {
      if (opened) return;
      seen += chunk;
      if (!seen.startsWith("HTTP/1.1 200")) {
        if (seen.includes("\r\n")) reject(new Error(`GET events answered ${seen.slice(0, seen.indexOf("\r\n"))}`));
        return;
      }
      if (!seen.includes("event: created\n")) return;
      opened = true;
      seen = "";
      resolve({
        close: () =>
          new Promise<void>((done) => {
            if (socket.destroyed) return done();
            socket.once("close", () => done());
            socket.destroy();
          }),
      });
    });
    socket.on("error", (error) => (opened ? undefined : reject(error)));
    socket.on("close", () => (opened ? undefined : reject(new Error("the connection closed"))));
  });
}

/** One WebSocket with a subscription per id, open once every subscription's first entry has arrived. */
function openSocket(baseUrl: string, ids: readonly string[]): Promise<Held> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${baseUrl.replace(/^http/, "ws")}${routes.websocket()}`, { perMessageDeflate: false });
    const waiting = new Set(ids.map((_, i) => `s${i}`));
    ws.on("open", () => {
      for (const [i, id] of ids.entries()) ws.send(JSON.stringify({ type: "subscribe", sub: `s${i}`, generation: id }));
    });
    ws.on("message", (data: Buffer) => {
      if (waiting.size === 0) return;
      const frame = JSON.parse(data.toString("utf8")) as WsServerFrame;
      if (frame.type === "entry") waiting.delete(frame.sub);
      else if (frame.type === "error") reject(new Error(`${frame.error.code}: ${frame.error.message}`));
      if (waiting.size === 0) {
        resolve({
          close: () =>
            new Promise((done) => {
              if (ws.readyState === WebSocket.CLOSED) return done();
              ws.once("close", () => done());
              ws.terminate();
            }),
        });
      }
    });
    ws.on("error", reject);
    ws.on("close", () => reject(new Error("the socket closed")));
  });
}
