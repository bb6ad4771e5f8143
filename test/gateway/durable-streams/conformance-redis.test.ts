import { runConformanceTests } from "@durable-streams/server-conformance-tests";
import { afterAll, beforeAll, beforeEach, describe } from "vitest";
import { reportConformanceCount } from "../../support/conformance-count.ts";
import { redisAvailable, requireRedis, startStandalone, type RedisServer } from "../../support/redis-harness.ts";
import { startStreamGateway } from "../../support/stream-gateway.ts";

// The public Durable Streams conformance suite against the gateway on the Redis engine: a real
// redis-server on a free port; outside CI the file skips loudly without redis-server.
// The origin of the suite's cross-origin preflight: a deployment lets a page there call it.
const SUITE_ORIGIN = "https://example.com";

describe("Durable Streams conformance: gateway on redis", () => {
  const config = { baseUrl: "", longPollTimeoutMs: 2_000 };
  let server: RedisServer | undefined;
  let gateway: Awaited<ReturnType<typeof startStreamGateway>> | undefined;
  beforeEach((ctx) => requireRedis(ctx));
  beforeAll(async () => {
    if (!redisAvailable()) return;
    server = await startStandalone();
    gateway = await startStreamGateway(
      { kind: "redis", target: { mode: "standalone", url: server.url }, prefix: `ds${process.pid}` },
      { streamLongPollMs: 500, corsOrigins: [SUITE_ORIGIN] },
    );
    config.baseUrl = gateway.url;
  });
  afterAll(async () => {
    await gateway?.stop();
    await server?.stop();
  });
  reportConformanceCount("Durable Streams conformance on redis");
  runConformanceTests(config);
});
