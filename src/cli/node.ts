import type { Engine } from "../engine/port.ts";
import { withArchive } from "../engine/archive/archived-engine.ts";
import { Archiver } from "../engine/archive/archiver.ts";
import { openReadModelStore } from "../gateway/read-models/open-store.ts";
import type { ReadModelStore } from "../projections/store/port.ts";
import { archiveConfigOf, openArchive } from "../engine/archive/open-archive.ts";
import type { Archive } from "../engine/archive/port.ts";
import { openEngine } from "../engine/open-engine.ts";
import { openKeyStore } from "../engine/keys/open-key-store.ts";
import { openStreamStore } from "../engine/streams/open-stream-store.ts";
import { openWorkerStatusStore } from "../engine/workers/open-worker-status-store.ts";
import { Gateway } from "../gateway/gateway.ts";
import { buildModelRegistry, readModelConfig } from "../llm/model-config.ts";
import { createModelRegistry } from "../llm/models.ts";
import { providerFactoriesFor } from "../llm/provider-factories.ts";
import type { ModelRegistry } from "../llm/models.ts";
import { breakersOf } from "../llm/resilience/plan.ts";
import { createLogger, type Logger } from "../observability/logger.ts";
import { Metrics } from "../observability/metrics.ts";
import { serveMetrics, type MetricsServer } from "../observability/metrics-server.ts";
import { StatusReporter } from "../worker/status-reporter.ts";
import { Worker } from "../worker/worker.ts";
import { engineConfigOf } from "./engine-config.ts";
import { awaitEngine, watchEngine } from "./engine-watch.ts";
import type { Config } from "./config.ts";

export interface NodeRoles {
  readonly gateway: boolean;
  readonly worker: boolean;
}

/** A running Lifeline process: a gateway, a worker or both, over one engine. */
export interface LifelineNode {
  readonly url: string | undefined;
  /** Where a process without a gateway serves `/metrics` (`LIFELINE_METRICS_PORT`), if it does. */
  readonly metricsUrl: string | undefined;
  readonly engine: Engine;
  readonly logger: Logger;
  /** Graceful: streams end, answers are handed back, the engine closes. */
  stop(): Promise<void>;
}

/** Wires the parts a process runs; gateway and worker meet only here. */
export async function startNode(
  config: Config,
  roles: NodeRoles,
  overrides: { models?: ModelRegistry; logger?: Logger; onFatal?: (error: Error) => void } = {},
): Promise<LifelineNode> {
  const logger = overrides.logger ?? createLogger(config.logLevel);
  // Models first: a bad configuration file stops the start before any connection is open.
  const models = overrides.models ?? (await modelsOf(config));
  const engine = await openEngine(engineConfigOf(config), logger);
  // What the start has opened, closed together when a later step fails, and by a stop.
  const closers: (() => Promise<unknown> | undefined)[] = [() => engine.close()];
  const closeOpened = async (): Promise<void> => {
    await Promise.all(closers.map((close) => close()?.catch(() => undefined)));
  };
  // No work is taken and no port opened on an engine that does not answer: a wrong address fails the start.
  try {
    await awaitEngine(engine, config.engineRetryMs, logger);
  } catch (error) {
    await closeOpened();
    throw error;
  }
  // The keys every gateway checks, beside the engine. A gateway on an address other than loopback
  // with no key would let anyone who reaches it spend the model budget and read every answer.
  const keys = roles.gateway ? await openKeyStore(engineConfigOf(config), logger) : undefined;
  closers.push(() => keys?.close());
  if (keys && !isLoopback(config.host) && !(await keys.hasKeys().catch(() => false))) {
    await closeOpened();
    throw new Error(
      `refusing to serve ${config.host} without API keys: anyone who reaches it could start and read answers. ` +
        "Create one with `lifeline keys create --tenant <name> --scopes generations:create,generations:read` on the same engine, " +
        "or bind to a loopback address (LIFELINE_HOST=127.0.0.1).",
    );
  }
  // The archive of finished logs (decision 039): a gateway reads an answer the engine no longer
  // holds from it. PostgreSQL that stays down past the retry budget fails the start, naming it.
  let archive: Archive | undefined;
  try {
    archive = roles.gateway ? await openArchive(archiveConfigOf(config), { budgetMs: config.engineRetryMs, logger }) : undefined;
  } catch (error) {
    await closeOpened();
    throw error;
  }
  closers.push(() => archive?.close());
  // The read models behind /ops (decision 037): each gateway projects the logs into them.
  let readModels: ReadModelStore | undefined;
  try {
    readModels = roles.gateway ? await openReadModelStore(config, { budgetMs: config.engineRetryMs, logger }) : undefined;
  } catch (error) {
    await closeOpened();
    throw error;
  }
  closers.push(() => readModels?.close());
  const metrics = new Metrics();
  // The distributed mode counts every gateway's requests in Redis, so N gateways enforce one limit.
  const engineConfig = engineConfigOf(config);
  const limitCounters =
    roles.gateway && engineConfig.kind === "redis"
      ? (await import("../engine/redis/connection.ts")).connectRedis(engineConfig.target, "lifeline-limits", { logger })
      : undefined;
  closers.push(() => limitCounters?.quit());

  // Workers report their leases and breakers there; a gateway reads them for /ops (decision 041).
  const workerStatus = await openWorkerStatusStore(engineConfig, logger);
  closers.push(() => workerStatus.close());
  let worker: Worker | undefined;
  let reporter: StatusReporter | undefined;
  if (roles.worker) {
    worker = new Worker({
      engine,
      models,
      logger,
      metrics,
      name: config.workerName,
      leaseMs: config.leaseMs,
      concurrency: config.workerConcurrency,
      coalesceMs: config.coalesceMs,
    });
    worker.start();
    const running = worker;
    const breakers = () => breakersOf(models);
    metrics.watchBreakers(() =>
      breakers().map(({ provider, breaker }) => ({ provider, open: breaker.state !== "closed", opens: breaker.opens })),
    );
    metrics.watchCoalesceWindow(() => running.coalesceWindowMs);
    reporter = new StatusReporter({ store: workerStatus, worker: config.workerName, leases: () => running.heldLeases(), breakers, logger });
    reporter.start();
  }
  // A worker alone has no HTTP API: it serves its metrics on a port of their own when asked to.
  let metricsServer: MetricsServer | undefined;
  if (roles.worker && !roles.gateway && config.metricsPort !== undefined) {
    try {
      metricsServer = await serveMetrics(metrics, config.host, config.metricsPort);
    } catch (error) {
      await worker?.stop();
      await reporter?.stop();
      await closeOpened();
      throw error;
    }
  }
  closers.push(() => metricsServer?.close());
  let gateway: Gateway | undefined;
  let url: string | undefined;
  // The Durable Streams door's store, beside the engine: only a gateway serves it.
  const streams = roles.gateway ? await openStreamStore(engineConfigOf(config), logger) : undefined;
  closers.push(() => streams?.close());
  if (roles.gateway) {
    gateway = new Gateway({
      engine: archive ? withArchive(engine, archive) : engine,
      ...(streams ? { streams } : {}),
      ...(keys ? { keys } : {}),
      workers: workerStatus,
      ...(readModels ? { readModels: { store: readModels, stuckAfterMs: config.stuckAfterMs } } : {}),
      corsOrigins: config.corsOrigins === "" ? [] : config.corsOrigins.split(",").map((o) => o.trim()),
      limits: {
        requestsPerMinute: config.requestsPerMinute,
        answersPerKey: config.answersPerKey,
        tokensPerMinute: config.tokensPerMinute,
        streamsPerKey: config.streamsPerKey,
        ...(limitCounters ? { redis: limitCounters, prefix: config.redisPrefix } : {}),
      },
      metrics,
      logger,
      models: () => models.names(),
      heartbeatMs: config.heartbeatMs,
      streamLongPollMs: config.streamLongPollMs,
      maxBodyBytes: config.maxBodyBytes,
    });
    try {
      url = await gateway.listen(config.host, config.port);
    } catch (error) {
      // The port is taken, say: close what was opened so the process can exit.
      await Promise.all([gateway.close().catch(() => undefined), worker?.stop()]);
      await reporter?.stop();
      await closeOpened();
      throw error;
    }
  }
  logger.info({ url, engine: engine.kind, worker: roles.worker ? config.workerName : undefined }, "lifeline started");
  // Every gateway keeps the archive filled from the engine's change feed; copying a log twice is
  // harmless, so they need no lock between them (decision 039).
  const archiver = archive
    ? new Archiver({
        engine,
        archive,
        logger,
        onOutcome: (outcome) => (outcome === "failed" ? metrics.archiveFailures.inc() : metrics.archivedLogs.inc({ result: outcome })),
      })
    : undefined;
  archiver?.start();
  // An engine that does not answer can take nothing back: a stop then closes it first, which ends
  // the commands still queued for it, so the worker's claims and flushes end at once instead of
  // waiting through every reconnect. The watch goes on during a stop: an engine lost meanwhile is
  // closed too, so a SIGTERM in an outage ends within the retry budget.
  let engineLost = false;
  let stopping: Promise<void> | undefined;
  const watch = watchEngine({
    engine,
    logger,
    budgetMs: config.engineRetryMs,
    onUnreachable: (error) => {
      engineLost = true;
      logger.fatal({ err: error.message }, "the engine is unreachable past its retry budget");
      if (stopping) void engine.close();
      else overrides.onFatal?.(error);
    },
  });

  return {
    url,
    metricsUrl: metricsServer?.url,
    engine,
    logger,
    stop: () =>
      (stopping ??= (async () => {
        if (engineLost || watch.failing) await engine.close();
        await Promise.all([gateway?.close(), worker?.stop(), archiver?.stop()]);
        await reporter?.stop();
        watch.stop();
        await closeOpened();
        logger.info("lifeline stopped");
      })()),
  };
}

/** True for an address only this machine can reach: 127.0.0.0/8, ::1, localhost. */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** The models the configuration file describes, or the built-in `sim` alone. */
export async function modelsOf(config: Config): Promise<ModelRegistry> {
  const sim = { tokensPerSecond: config.simTokensPerSecond };
  if (config.modelConfig === "") return createModelRegistry({ sim });
  const models = readModelConfig(config.modelConfig);
  return buildModelRegistry(models, await providerFactoriesFor(models), process.env, sim);
}
