/**
 * The server of `bench/follows.ts`: a gateway alone (no worker), configured by the `LIFELINE_*`
 * variables it is started with; or, with `FOLLOWS_FLOOR=1`, a bare `node:http` server that answers
 * every follow with the same event-stream headers and one frame and holds it open (what any Node
 * server pays per open response). Run with `--expose-gc`: asked over IPC, it collects garbage until
 * the heap stops shrinking and reports its memory, so the orchestrator can tell what each open
 * follow costs.
 */
import { writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { Session } from "node:inspector/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { loadConfig } from "../../src/cli/config.ts";
import { startNode } from "../../src/cli/node.ts";
import { encodeSseFrame } from "../../src/core/wire.ts";
import { profileShares, type CpuProfile } from "./cpu-profile-shares.ts";
import type { FromGateway, MemorySample, ToGateway } from "./follows-protocol.ts";

function send(message: FromGateway): void {
  process.send?.(message);
}

const collect = (globalThis as { gc?: () => void }).gc;
if (!collect) throw new Error("run the gateway child with --expose-gc");
const gc: () => void = collect;

/** Full collections until the heap stops shrinking (weak references and finalizers take a few rounds). */
async function settledSample(): Promise<MemorySample> {
  let last = Infinity;
  for (let round = 0; round < 10; round++) {
    gc();
    await sleep(20);
    const used = process.memoryUsage().heapUsed;
    if (used >= last - 1024) break;
    last = used;
  }
  const m = process.memoryUsage();
  return { heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers, rss: m.rss, cpuMs: cpuMs() };
}

function cpuMs(): number {
  const cpu = process.cpuUsage();
  return (cpu.user + cpu.system) / 1000;
}

/** A sampling CPU profile of this process, from `start` to `stop`, summarized. */
const profiler = {
  session: undefined as Session | undefined,
  async start(): Promise<void> {
    this.session = new Session();
    this.session.connect();
    await this.session.post("Profiler.enable");
    await this.session.post("Profiler.setSamplingInterval", { interval: 200 });
    await this.session.post("Profiler.start");
  },
  async stop(file?: string): Promise<ReturnType<typeof profileShares>> {
    const session = this.session;
    if (!session) return { byPlace: [], byFunction: [] };
    const { profile } = (await session.post("Profiler.stop")) as { profile: CpuProfile };
    session.disconnect();
    this.session = undefined;
    if (file !== undefined) writeFileSync(file, JSON.stringify(profile));
    return profileShares(profile);
  },
};

/** The floor: every GET is an event stream held open, every POST a new id. */
async function startFloor(): Promise<{ url: string; stop(): Promise<void> }> {
  let next = 0;
  const frame = encodeSseFrame({ id: "1", event: "created", data: JSON.stringify({ offset: 1, type: "created" }) });
  const server: Server = createServer((req, res) => {
    if (req.method === "POST") {
      req.resume();
      res.writeHead(201, { "content-type": "application/json" }).end(JSON.stringify({ id: `floor_${++next}` }));
      return;
    }
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache, no-transform",
      connection: "keep-alive",
      "x-accel-buffering": "no",
    });
    res.write(`retry: 1000\n\n${frame}`);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    stop: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

try {
  const server =
    process.env.FOLLOWS_FLOOR === "1"
      ? await startFloor()
      : await startNode(loadConfig({ ...process.env, LIFELINE_HOST: "127.0.0.1", LIFELINE_PORT: "0" }, {}), {
          gateway: true,
          worker: false,
        }).then((node) => ({ url: node.url ?? "", stop: () => node.stop() }));
  process.on("message", (message: ToGateway) => {
    if (message.type === "measure") {
      void settledSample().then((sample) => send({ type: "memory", seq: message.seq, sample }));
    } else if (message.type === "cpu") {
      send({ type: "cpu", seq: message.seq, cpuMs: cpuMs() });
    } else if (message.type === "profileStart") {
      void profiler.start().then(() => send({ type: "profiling", seq: message.seq }));
    } else if (message.type === "profileStop") {
      void profiler.stop(message.file).then((shares) => send({ type: "profile", seq: message.seq, ...shares }));
    } else {
      void server.stop().then(() => process.exit(0));
    }
  });
  send({ type: "ready", url: server.url });
} catch (error) {
  send({ type: "error", message: error instanceof Error ? (error.stack ?? error.message) : String(error) });
  process.exit(1);
}
