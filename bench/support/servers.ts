import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../src/cli/config.ts";
import { startNode } from "../../src/cli/node.ts";
import { createModelRegistry } from "../../src/llm/models.ts";
import { SimProvider, type SimOptions } from "../../src/llm/sim/sim-provider.ts";
import { createLogger } from "../../src/observability/logger.ts";
import type { AskStyle } from "./client-fleet.ts";
import { startDirectPipe } from "./direct-pipe.ts";
import { registryWithFirstTokenDelay, withFirstTokenDelay } from "./first-token-delay.ts";
import { startRedisFloor } from "./redis-floor.ts";
import type { EmitLog } from "./token-latency.ts";

/**
 * What a phase serves answers with: the direct pipe (both benches), the embedded node over sqlite
 * (the embedded bench), the XADD+PUBLISH floor or a Lifeline node over Redis (the distributed bench).
 */
export type ServeSpec =
  | { readonly mode: "direct" }
  | { readonly mode: "embedded"; readonly coalesceMs: number }
  | { readonly mode: "floor" }
  | { readonly mode: "lifeline"; readonly coalesceMs: number };

/** The servers the embedded bench compares. */
export type EmbeddedSpec = Extract<ServeSpec, { readonly mode: "direct" | "embedded" }>;
/** The servers the distributed bench compares. */
export type DistributedSpec = Extract<ServeSpec, { readonly mode: "direct" | "floor" | "lifeline" }>;

export interface RunningServer {
  readonly url: string;
  /** How clients ask this server for an answer. */
  readonly ask: AskStyle;
  stop(): Promise<void>;
}

export interface ServeOptions {
  readonly emits: EmitLog;
  readonly tokensPerSecond: number;
  /** Answers run at once: the worker's concurrency for the embedded and Lifeline nodes. */
  readonly concurrency: number;
  /** The model's think time before its first token. */
  readonly firstTokenDelayMs: number;
  /** The Redis of the floor and of the Lifeline node, and the prefix of every key of the phase. */
  readonly redis?: { readonly url: string; readonly prefix: string };
}

/**
 * Starts a fresh server for one phase, in this process (so the sim's `onToken` hook and the
 * server share one clock), on a new port: the direct pipe, the embedded node (gateway + worker
 * over sqlite in a new data dir), the XADD+PUBLISH floor, or a Lifeline node running gateway and
 * worker over `LIFELINE_ENGINE=redis`.
 */
export async function startServer(spec: ServeSpec, options: ServeOptions): Promise<RunningServer> {
  const sim = { tokensPerSecond: options.tokensPerSecond, onToken: options.emits.onToken };
  switch (spec.mode) {
    case "direct": {
      const pipe = await startDirectPipe(withFirstTokenDelay(new SimProvider(sim), options.firstTokenDelayMs));
      return { url: pipe.url, ask: { kind: "get", path: "/direct" }, stop: () => pipe.close() };
    }
    case "floor": {
      const redis = requireRedis(options);
      const floor = await startRedisFloor(withFirstTokenDelay(new SimProvider(sim), options.firstTokenDelayMs), redis.url, redis.prefix);
      return { url: floor.url, ask: { kind: "get", path: "/floor" }, stop: () => floor.close() };
    }
    case "embedded":
      return startWithDataDir({ LIFELINE_ENGINE: "sqlite" }, spec.coalesceMs, options, sim, "the embedded node");
    case "lifeline": {
      const redis = requireRedis(options);
      const env = { LIFELINE_ENGINE: "redis", LIFELINE_REDIS_URL: redis.url, LIFELINE_REDIS_PREFIX: redis.prefix };
      return startWithDataDir(env, spec.coalesceMs, options, sim, "the Lifeline node");
    }
  }
}

/**
 * A Lifeline node with a data dir of its own, removed when it stops: the sqlite engine's files, or
 * with Redis the read models (in `.lifeline` by default, where those of earlier runs would be looked at too).
 */
async function startWithDataDir(
  env: Record<string, string>,
  coalesceMs: number,
  options: ServeOptions,
  sim: SimOptions,
  what: string,
): Promise<RunningServer> {
  const dataDir = mkdtempSync(join(tmpdir(), "lifeline-bench-"));
  const node = await startLifelineNode({ ...env, LIFELINE_DATA_DIR: dataDir }, coalesceMs, options, sim, what);
  return {
    url: node.url,
    ask: { kind: "post-then-get" },
    stop: async () => {
      await node.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

function requireRedis(options: ServeOptions): { readonly url: string; readonly prefix: string } {
  if (options.redis === undefined) throw new Error("this server needs options.redis");
  return options.redis;
}

/** A node with gateway and worker in this process, on the given engine, serving the sim. */
async function startLifelineNode(
  engine: Record<string, string>,
  coalesceMs: number,
  options: ServeOptions,
  sim: SimOptions,
  what: string,
): Promise<{ url: string; stop(): Promise<void> }> {
  const config = loadConfig(
    {
      ...engine,
      LIFELINE_HOST: "127.0.0.1",
      LIFELINE_PORT: "0",
      LIFELINE_WORKER_CONCURRENCY: String(Math.max(1, options.concurrency)),
      LIFELINE_COALESCE_MS: String(coalesceMs),
      LIFELINE_SIM_TOKENS_PER_SECOND: String(options.tokensPerSecond),
      LIFELINE_LOG_LEVEL: "warn",
    },
    {},
  );
  const models = registryWithFirstTokenDelay(createModelRegistry({ sim }), options.firstTokenDelayMs);
  const node = await startNode(config, { gateway: true, worker: true }, { models, logger: createLogger("warn") });
  const url = node.url;
  if (url === undefined) throw new Error(`${what} did not listen`);
  return { url, stop: () => node.stop() };
}

export function labelOf(spec: ServeSpec): string {
  switch (spec.mode) {
    case "direct":
      return "direct pipe";
    case "embedded":
      return `embedded, coalesce ${spec.coalesceMs} ms`;
    case "floor":
      return "XADD+PUBLISH floor";
    case "lifeline":
      return `lifeline redis, coalesce ${spec.coalesceMs} ms`;
  }
}
