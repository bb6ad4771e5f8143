import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Metrics } from "../../src/observability/metrics.ts";
import { serveMetrics, type MetricsServer } from "../../src/observability/metrics-server.ts";

describe("a worker's metrics port (LIFELINE_METRICS_PORT)", () => {
  const metrics = new Metrics({ defaultMetrics: false });
  let server: MetricsServer;
  beforeAll(async () => {
    server = await serveMetrics(metrics, "127.0.0.1", 0);
  });
  afterAll(async () => {
    await server?.close();
  });

  it("serves the process's metrics as Prometheus text, and /healthz", async () => {
    metrics.takeovers.inc();
    const res = await fetch(`${server.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
    expect(await res.text()).toMatch(/^lifeline_takeovers_total 1$/m);
    const health = await fetch(`${server.url}/healthz`);
    expect([health.status, await health.json()]).toEqual([200, { status: "ok" }]);
  });

  it("serves nothing else: another path is 404, another method 405", async () => {
    expect((await fetch(`${server.url}/v1/generations`)).status).toBe(404);
    expect((await fetch(`${server.url}/metrics`, { method: "POST" })).status).toBe(405);
  });
});
