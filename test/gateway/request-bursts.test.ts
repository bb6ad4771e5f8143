import { Agent, request as httpRequest } from "node:http";
import { describe, expect, it } from "vitest";
import { routes } from "../../src/core/routes.ts";
import { MemoryEngine } from "../../src/engine/memory/memory-engine.ts";
import { Gateway } from "../../src/gateway/gateway.ts";
import { createLogger } from "../../src/observability/logger.ts";
import { Metrics } from "../../src/observability/metrics.ts";
import { overriding } from "../support/overriding-engine.ts";
import { timerTurns } from "../support/timer-turns.ts";

/** POSTs `body` to `url` on `agent`; the status and the body. */
function post(agent: Agent, url: string, body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: "POST", agent, headers: { "content-type": "application/json" } }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (text += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

describe("a burst of requests", () => {
  it("read in one turn are handled a slice at a time: timers run between them, and every one is answered", async () => {
    const memory = new MemoryEngine();
    // An engine whose creates each take half a millisecond of CPU and never wait for I/O.
    let timers: ReturnType<typeof timerTurns> | undefined;
    const createsPerTurn = new Map<number, number>();
    const engine = overriding(memory, {
      create: (...args) => {
        const end = performance.now() + 0.5;
        while (performance.now() < end);
        const turn = timers?.now() ?? 0;
        createsPerTurn.set(turn, (createsPerTurn.get(turn) ?? 0) + 1);
        return memory.create(...args);
      },
    });
    const gateway = new Gateway({
      engine,
      metrics: new Metrics(),
      logger: createLogger("silent"),
      models: () => ["sim"],
      heartbeatMs: 15_000,
      maxBodyBytes: 1024 * 1024,
      web: false,
    });
    const burst = 200;
    const agent = new Agent({ keepAlive: true, maxSockets: burst });
    try {
      const url = await gateway.listen("127.0.0.1", 0);
      const body = JSON.stringify({ model: "sim", messages: [{ role: "user", content: "burst" }] });
      // Every connection open first, so the burst's requests reach the gateway together.
      await Promise.all(Array.from({ length: burst }, () => post(agent, `${url}${routes.healthz()}`, "{}").catch(() => undefined)));
      createsPerTurn.clear();
      timers = timerTurns();
      const answers = await Promise.all(Array.from({ length: burst }, () => post(agent, `${url}${routes.generations()}`, body)));
      expect(answers.map((answer) => answer.status)).toEqual(answers.map(() => 201));
      expect([...createsPerTurn.values()].reduce((a, b) => a + b, 0)).toBe(burst);
      // A 10 ms slice holds about twenty creates; two slices may fall between two firings of the
      // timer on a busy machine. Handled in one poll of the sockets, all 200 fell between two.
      expect(Math.max(...createsPerTurn.values())).toBeLessThanOrEqual(60);
    } finally {
      timers?.stop();
      agent.destroy();
      await gateway.close();
      await memory.close();
    }
  });
});
