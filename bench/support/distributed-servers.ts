import { loadConfig } from "../../src/cli/config.ts";
import { startNode } from "../../src/cli/node.ts";
import { createModelRegistry } from "../../src/llm/models.ts";
import { SimProvider } from "../../src/llm/sim/sim-provider.ts";
import { createLogger } from "../../src/observability/logger.ts";
import type { AskStyle } from "./client-fleet.ts";
import { startDirectPipe } from "./direct-pipe.ts";
import { registryWithFirstTokenDelay, withFirstTokenDelay } from "./first-token-delay.ts";
import { startRedisFloor } from "./redis-floor.ts";
import type { EmitLog } from "./token-latency.ts";

/** What a phase of the distributed bench serves answers with. */
export type DistributedSpec = { readonly mode: "direct" } | { readonly mode: "floor" } | { readonly mode: "lifeline"; readonly coalesceMs: number };

export interface DistributedServer {
  readonly url: string;
  /** How clients ask this server for an answer. */
  readonly ask: AskStyle;
  stop(): Promise<void>;
}

export interface DistributedServeOptions {
  readonly emits: EmitLog;
  readonly tokensPerSecond: number;
  /** Answers run at once: the worker's concurrency for Lifeline. */
  readonly concurrency: number;
  /** The model's think time before its first token. */
  readonly firstTokenDelayMs: number;
  readonly redisUrl: string;
  /** Prefix of every Redis key of the phase. */
  readonly prefix: string;
}

/**
 * Starts a fresh server for one phase, in this process (so the sim's `onToken` hook and the
 * server share one clock): the direct pipe, the XADD+PUBLISH floor, or a Lifeline node running
 * gateway and worker over `LIFELINE_ENGINE=redis`.
 */
export async function startDistributedServer(spec: DistributedSpec, options: DistributedServeOptions): Promise<DistributedServer> {
  const sim = { tokensPerSecond: options.tokensPerSecond, onToken: options.emits.onToken };
  switch (spec.mode) {
    case "direct": {
      const pipe = await startDirectPipe(withFirstTokenDelay(new SimProvider(sim), options.firstTokenDelayMs));
      return { url: pipe.url, ask: { kind: "get", path: "/direct" }, stop: () => pipe.close() };
    }
    case "floor": {
      const floor = await startRedisFloor(withFirstTokenDelay(new SimProvider(sim), options.firstTokenDelayMs), options.redisUrl, options.prefix);
      return { url: floor.url, ask: { kind: "get", path: "/floor" }, stop: () => floor.close() };
    }
    case "lifeline": {
      const config = loadConfig(
        {
          LIFELINE_ENGINE: "redis",
          LIFELINE_REDIS_URL: options.redisUrl,
          LIFELINE_REDIS_PREFIX: options.prefix,
          LIFELINE_HOST: "127.0.0.1",
          LIFELINE_PORT: "0",
          LIFELINE_WORKER_CONCURRENCY: String(Math.max(1, options.concurrency)),
          LIFELINE_COALESCE_MS: String(spec.coalesceMs),
          LIFELINE_SIM_TOKENS_PER_SECOND: String(options.tokensPerSecond),
          LIFELINE_LOG_LEVEL: "warn",
        },
        {},
      );
      const models = registryWithFirstTokenDelay(createModelRegistry({ sim }), options.firstTokenDelayMs);
      const node = await startNode(config, { gateway: true, worker: true }, { models, logger: createLogger("warn") });
      if (node.url === undefined) throw new Error("the Lifeline node did not listen");
      return { url: node.url, ask: { kind: "post-then-get" }, stop: () => node.stop() };
    }
  }
}

export function distributedLabelOf(spec: DistributedSpec): string {
  switch (spec.mode) {
    case "direct":
      return "direct pipe";
    case "floor":
      return "XADD+PUBLISH floor";
    case "lifeline":
      return `lifeline redis, coalesce ${spec.coalesceMs} ms`;
  }
}
