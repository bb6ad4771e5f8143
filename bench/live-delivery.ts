/**
 * Live delivery on Redis: how a gateway learns that one of its N open streams has a new entry.
 *
 *   pubsub   — what the Redis engine does: XADD + SPUBLISH per append, one subscriber connection
 *              holding N sharded subscriptions.
 *   xread    — the alternative: XADD only, one connection looping XREAD BLOCK over all N streams,
 *              re-sent with every key after each wake.
 *
 * Same Redis, same appends (random streams at a fixed rate), measured one after the other:
 * wake latency (append sent → reader knows) and the CPU Redis and the reader spend per append.
 *
 *   node --import tsx bench/live-delivery.ts [--streams 1000,10000] [--rate 2000] [--seconds 5]
 */
import { writeFileSync, mkdirSync } from "node:fs";
import { cpus } from "node:os";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import { startStandalone } from "../test/support/redis-harness.ts";

const { values } = parseArgs({
  options: {
    streams: { type: "string", default: "1000,10000" },
    rate: { type: "string", default: "2000" },
    seconds: { type: "string", default: "5" },
    out: { type: "string", default: "bench/results/live-delivery.json" },
  },
});
const levels = values.streams.split(",").map(Number);
const rate = Number(values.rate);
const seconds = Number(values.seconds);

interface Row {
  mode: "pubsub" | "xread";
  streams: number;
  appends: number;
  delivered: number;
  p50Ms: number;
  p99Ms: number;
  redisCpuUsPerAppend: number;
  readerCpuUsPerAppend: number;
}

const percentile = (sorted: number[], p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

async function redisCpuSeconds(client: Redis): Promise<number> {
  const info = await client.info("cpu");
  const user = Number(/used_cpu_user:([\d.]+)/.exec(info)?.[1] ?? 0);
  const sys = Number(/used_cpu_sys:([\d.]+)/.exec(info)?.[1] ?? 0);
  return user + sys;
}

async function measure(url: string, mode: Row["mode"], streams: number): Promise<Row> {
  const writer = new Redis(url);
  const reader = new Redis(url);
  const prefix = `ld${mode}${streams}${Date.now()}`;
  const key = (i: number): string => `${prefix}:{s${i}}:log`;
  const channel = (i: number): string => `${prefix}:{s${i}}:n`;
  const sentAt = new Map<string, number>(); // `${stream}:${seq}` → time sent
  const latencies: number[] = [];
  let stopped = false;

  for (let i = 0; i < streams; i += 500) {
    const pipe = writer.pipeline();
    for (let j = i; j < Math.min(streams, i + 500); j++) pipe.xadd(key(j), "0-1", "b", "init");
    await pipe.exec();
  }

  let readerLoop: Promise<void> = Promise.resolve();
  if (mode === "pubsub") {
    reader.on("smessage", (_channel: string, message: string) => {
      const t = sentAt.get(message);
      if (t !== undefined) latencies.push(performance.now() - t);
    });
    for (let i = 0; i < streams; i += 1000) {
      await reader.ssubscribe(...Array.from({ length: Math.min(1000, streams - i) }, (_, k) => channel(i + k)));
    }
  } else {
    const lastIds = Array.from({ length: streams }, () => "0-1");
    readerLoop = (async () => {
      while (!stopped) {
        const keys = Array.from({ length: streams }, (_, i) => key(i));
        const reply = (await reader.xread("COUNT", 100, "BLOCK", 200, "STREAMS", ...keys, ...lastIds)) as
          [string, [string, string[]][]][] | null;
        const now = performance.now();
        for (const [k, entries] of reply ?? []) {
          const i = Number(/\{s(\d+)\}/.exec(k)?.[1]);
          for (const [id, fields] of entries) {
            lastIds[i] = id;
            const t = sentAt.get(fields[1] ?? "");
            if (t !== undefined) latencies.push(now - t);
          }
        }
      }
    })();
  }

  const cpuBefore = await redisCpuSeconds(writer);
  const readerBefore = process.cpuUsage();
  const total = Math.round(rate * seconds);
  const started = performance.now();
  let seq = 0;
  for (let n = 0; n < total; n++) {
    const due = started + (n * 1000) / rate - performance.now();
    if (due > 1) await new Promise((r) => setTimeout(r, due));
    const stream = Math.floor(Math.random() * streams);
    const tag = `${stream}:${seq++}`;
    sentAt.set(tag, performance.now());
    if (mode === "pubsub") {
      void writer.multi().xadd(key(stream), "*", "b", tag).spublish(channel(stream), tag).exec();
    } else {
      void writer.xadd(key(stream), "*", "b", tag);
    }
  }
  await new Promise((r) => setTimeout(r, 500));
  stopped = true;
  await readerLoop;
  const readerCpu = process.cpuUsage(readerBefore);
  const cpuAfter = await redisCpuSeconds(writer);
  latencies.sort((a, b) => a - b);
  writer.disconnect();
  reader.disconnect();
  return {
    mode,
    streams,
    appends: total,
    delivered: latencies.length,
    p50Ms: Number(percentile(latencies, 50).toFixed(2)),
    p99Ms: Number(percentile(latencies, 99).toFixed(2)),
    redisCpuUsPerAppend: Number((((cpuAfter - cpuBefore) * 1e6) / total).toFixed(1)),
    // The writer runs in this process too; its share is the same in both modes.
    readerCpuUsPerAppend: Number(((readerCpu.user + readerCpu.system) / total).toFixed(1)),
  };
}

const server = await startStandalone();
const rows: Row[] = [];
try {
  for (const streams of levels) {
    for (const mode of ["pubsub", "xread"] as const) {
      const row = await measure(server.url, mode, streams);
      rows.push(row);
      console.log(JSON.stringify(row));
    }
  }
} finally {
  await server.stop();
}
mkdirSync("bench/results", { recursive: true });
writeFileSync(
  values.out,
  JSON.stringify(
    { date: new Date().toISOString(), node: process.version, cpus: cpus().length, cpu: cpus()[0]?.model, rate, seconds, rows },
    null,
    2,
  ),
);
console.log(`wrote ${values.out}`);
process.exit(0);
