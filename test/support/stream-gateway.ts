import type { KeyStore } from "../../src/engine/keys/port.ts";
import { openEngine, type EngineConfig } from "../../src/engine/open-engine.ts";
import { openStreamStore } from "../../src/engine/streams/open-stream-store.ts";
import { Gateway } from "../../src/gateway/gateway.ts";
import { createLogger } from "../../src/observability/logger.ts";
import { Metrics } from "../../src/observability/metrics.ts";

/** A real gateway on a free port over a real engine and stream store (no worker), for the Durable Streams door. */
export async function startStreamGateway(
  config: EngineConfig,
  options: { streamLongPollMs?: number; maxBodyBytes?: number; corsOrigins?: readonly string[]; keys?: KeyStore } = {},
): Promise<{ url: string; stop(): Promise<void> }> {
  const logger = createLogger("silent");
  const [engine, streams] = await Promise.all([openEngine(config, logger), openStreamStore(config, logger)]);
  const gateway = new Gateway({
    engine,
    streams,
    metrics: new Metrics(),
    logger,
    models: () => ["sim"],
    heartbeatMs: 15_000,
    maxBodyBytes: options.maxBodyBytes ?? 16 << 20,
    web: false,
    ...(options.streamLongPollMs !== undefined ? { streamLongPollMs: options.streamLongPollMs } : {}),
    ...(options.corsOrigins ? { corsOrigins: options.corsOrigins } : {}),
    ...(options.keys ? { keys: options.keys } : {}),
  });
  const url = await gateway.listen("127.0.0.1", 0);
  return {
    url,
    stop: async () => {
      await gateway.close();
      await Promise.all([engine.close(), streams.close()]);
    },
  };
}
