import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { expectExactAnswer } from "../support/invariants.ts";
import { useLifelineProcesses } from "../support/lifeline-processes.ts";
import { requireRedis } from "../support/redis-harness.ts";
import { refusedPort } from "../support/refused-port.ts";
import { runLifeline } from "../support/run-cli.ts";
import { readAnswer, startGeneration } from "../support/sse-client.ts";
import { tempDir } from "../support/temp-dir.ts";
import { BIN, expected, idle, idleWorkerThenWork, outputShows, request, running } from "./support/idle-processes.ts";

// The same processes on Redis, and on Sentinel and Cluster, are in idle-processes-redis.test.ts and
// idle-processes-ha.test.ts: files of their own, so that the fleets run side by side.

describe("processes run until a signal, however long they sit idle", () => {
  const start = useLifelineProcesses();
  const dirs: { remove(): void }[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) d.remove();
  });
  const dataDir = (): string => {
    const d = tempDir();
    dirs.push(d);
    return d.path;
  };

  it("a sqlite worker started first waits, takes an answer from a separately started gateway, finishes it, and exits 0 on SIGTERM", async () => {
    await idleWorkerThenWork({ LIFELINE_DATA_DIR: dataDir(), LIFELINE_SIM_TOKENS_PER_SECOND: "200" }, start);
  });

  it("lifeline start on the memory engine stays up while idle and exits 0 on SIGTERM", async () => {
    const node = await start("start", { LIFELINE_ENGINE: "memory", LIFELINE_LOG_LEVEL: "info", LIFELINE_SIM_TOKENS_PER_SECOND: "200" });
    await outputShows(node, /"msg":"waiting for work"/);
    await idle();
    const entries = await readAnswer(node.url, await startGeneration(node.url, request));
    expectExactAnswer(entries, expected);
    await idle();
    expect(running(node)).toBe(true);
    expect(await node.terminate()).toBe(0);
  });

  it("sim-llm stays up while idle, answers afterwards, and exits 0 on SIGTERM", async () => {
    const child = spawn(process.execPath, [BIN, "sim-llm", "--port", "0", "--tokens-per-second", "1000"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stderr.on("data", (chunk: Buffer) => (out += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    try {
      await expect.poll(() => /listening at (http:\/\/\S+)/.exec(out)?.[1], { timeout: 30_000, interval: 50 }).toBeDefined();
      const url = /listening at (http:\/\/\S+)/.exec(out)![1]!;
      await idle();
      expect(child.exitCode).toBeNull();
      const res = await fetch(`${url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          model: "sim",
          messages: request.messages,
          max_tokens: request.max_tokens,
          seed: request.seed,
          stream: true,
        }),
      });
      expect(res.status).toBe(200);
      const body = await res.text();
      const text = body
        .split("\n")
        .filter((line) => line.startsWith("data: {"))
        .map((line) => (JSON.parse(line.slice(6)) as { choices: { delta: { content?: string } }[] }).choices[0]?.delta.content ?? "")
        .join("");
      expect(text).toBe(expected);
      await idle();
      expect(child.exitCode).toBeNull();
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
    } finally {
      child.kill("SIGKILL");
    }
  });

  it("a port that is taken ends the start with status 1 and says why", async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const { port } = blocker.address() as { port: number };
    try {
      const run = await runLifeline(["start", "--engine", "memory", "--port", String(port)]);
      expect(run.status).toBe(1);
      expect(run.stderr).toMatch(/could not start: .*EADDRINUSE/);
      const sim = await runLifeline(["sim-llm", "--port", String(port)]);
      expect(sim.status).toBe(1);
      expect(sim.stderr).toMatch(/EADDRINUSE/);
    } finally {
      blocker.close();
    }
  });

  it("an engine that never answers ends the start with status 1 once its retry budget is spent", async (ctx) => {
    requireRedis(ctx);
    const port = await refusedPort();
    const run = await runLifeline(["worker", "--engine", "redis", "--redis-url", `redis://127.0.0.1:${port}`, "--engine-retry-ms", "1500"]);
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/could not start: the redis engine has not answered for 1500 ms/);
  });
});
