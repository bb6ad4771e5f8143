import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../src/cli/config.ts";
import { startNode } from "../../src/cli/node.ts";
import { createModelRegistry } from "../../src/llm/models.ts";
import { SimProvider } from "../../src/llm/sim/sim-provider.ts";
import { createLogger } from "../../src/observability/logger.ts";
import { startDirectPipe } from "./direct-pipe.ts";
import { registryWithFirstTokenDelay, withFirstTokenDelay } from "./first-token-delay.ts";
import type { EmitLog } from "./token-latency.ts";

/** What a phase serves answers with. */
export type ServeSpec = { readonly mode: "direct" } | { readonly mode: "embedded"; readonly coalesceMs: number };

export interface RunningServer {
  readonly url: string;
  stop(): Promise<void>;
}

export interface ServeOptions {
  readonly emits: EmitLog;
  readonly tokensPerSecond: number;
  /** Answers run at once: the worker's concurrency in embedded mode. */
  readonly concurrency: number;
  /** The model's think time before its first token. */
  readonly firstTokenDelayMs: number;
}

/** Starts a fresh server for one phase: a new data file for the embedded node, a new port for both. */
export async function startServer(spec: ServeSpec, options: ServeOptions): Promise<RunningServer> {
  const sim = { tokensPerSecond: options.tokensPerSecond, onToken: options.emits.onToken };
  if (spec.mode === "direct") {
    const pipe = await startDirectPipe(withFirstTokenDelay(new SimProvider(sim), options.firstTokenDelayMs));
    return { url: pipe.url, stop: () => pipe.close() };
  }
  const dataDir = mkdtempSync(join(tmpdir(), "lifeline-bench-"));
  const config = loadConfig(
    {
      LIFELINE_ENGINE: "sqlite",
      LIFELINE_DATA_DIR: dataDir,
      LIFELINE_HOST: "127.0.0.1",
      LIFELINE_PORT: "0",
      LIFELINE_WORKER_CONCURRENCY: String(Math.max(1, options.concurrency)),
      LIFELINE_COALESCE_MS: String(spec.coalesceMs),
      LIFELINE_SIM_TOKENS_PER_SECOND: String(options.tokensPerSecond),
      LIFELINE_LOG_LEVEL: "warn",
    },
    {},
  );
  const node = await startNode(config, { gateway: true, worker: true }, { models: registryWithFirstTokenDelay(createModelRegistry({ sim }), options.firstTokenDelayMs), logger: createLogger("warn") });
  if (node.url === undefined) throw new Error("the embedded node did not listen");
  return {
    url: node.url,
    stop: async () => {
      await node.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export function labelOf(spec: ServeSpec): string {
  return spec.mode === "direct" ? "direct pipe" : `embedded, coalesce ${spec.coalesceMs} ms`;
}
