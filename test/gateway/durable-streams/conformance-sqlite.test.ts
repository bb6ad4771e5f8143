import { runConformanceTests } from "@durable-streams/server-conformance-tests";
import { afterAll, beforeAll, describe } from "vitest";
import { reportConformanceCount } from "../../support/conformance-count.ts";
import { startStreamGateway } from "../../support/stream-gateway.ts";
import { tempDir } from "../../support/temp-dir.ts";

// The public Durable Streams conformance suite against the gateway on the sqlite engine.
// The origin of the suite's cross-origin preflight: a deployment lets a page there call it.
const SUITE_ORIGIN = "https://example.com";

describe("Durable Streams conformance: gateway on sqlite", () => {
  const config = { baseUrl: "", longPollTimeoutMs: 2_000 };
  const dir = tempDir("lifeline-ds-");
  let gateway: Awaited<ReturnType<typeof startStreamGateway>> | undefined;
  beforeAll(async () => {
    gateway = await startStreamGateway({ kind: "sqlite", dataDir: dir.path }, { streamLongPollMs: 500, corsOrigins: [SUITE_ORIGIN] });
    config.baseUrl = gateway.url;
  });
  afterAll(async () => {
    await gateway?.stop();
    dir.remove();
  });
  reportConformanceCount("Durable Streams conformance on sqlite");
  runConformanceTests(config);
});
