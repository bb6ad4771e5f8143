import { setMaxListeners } from "node:events";
import { fileURLToPath } from "node:url";
import fastifyStatic from "@fastify/static";
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from "fastify";
import { LifelineError } from "../core/errors.ts";
import { ROUTE_PATHS } from "../core/routes.ts";
import type { Engine } from "../engine/port.ts";
import { MemoryStreamStore } from "../engine/streams/memory.ts";
import type { StreamStore } from "../engine/streams/port.ts";
import type { Logger } from "../observability/logger.ts";
import type { Metrics } from "../observability/metrics.ts";
import { MemoryKeyStore } from "../engine/keys/memory.ts";
import type { KeyStore } from "../engine/keys/port.ts";
import { MemoryWorkerStatusStore } from "../engine/workers/memory.ts";
import type { WorkerStatusStore } from "../engine/workers/port.ts";
import { Authenticator, installAuthentication } from "./auth/authentication.ts";
import { installCors } from "./auth/cors.ts";
import { AnswerSlots } from "./auth/answer-slots.ts";
import { OpenStreams, installStreamLimits } from "./auth/open-streams.ts";
import { Owners } from "./auth/owners.ts";
import { TokenBudget } from "./auth/token-budget.ts";
import { GenerationStarter } from "./start-generation.ts";
import { installRequestLimits, UNCOUNTED, type RequestLimits } from "./auth/request-limits.ts";
import { guardEngine } from "./guarded-engine.ts";
import { guardKeyStore } from "./guarded-key-store.ts";
import { answerClientError, answerFrameworkError, installErrorHandling } from "./http-errors.ts";
import { installJsonBodyParser } from "./json-body.ts";
import { LogTails } from "./log-tail.ts";
import { aiSdkRoutes } from "./doors/ai-sdk/routes.ts";
import { durableStreamRoutes } from "./doors/durable-streams/routes.ts";
import { openAiRoutes } from "./doors/openai/routes.ts";
import { clientBundleRoutes } from "./routes/client-bundle.ts";
import { eventRoutes } from "./routes/events.ts";
import { generationRoutes } from "./routes/generations.ts";
import { healthRoutes } from "./routes/health.ts";
import { opsWorkerRoutes } from "./routes/ops-workers.ts";
import { opsAnswerRoutes } from "./routes/ops-answers.ts";
import { GatewayReadModels, type ReadModelOptions } from "./read-models/read-models.ts";
import { pollRoutes } from "./routes/poll.ts";
import { websocketRoutes } from "./routes/websocket.ts";
import { runInSlice } from "../observability/turns.ts";

/** Connections the kernel may hold for the gateway before it accepts them. */
const LISTEN_BACKLOG = 4096;

export interface GatewayOptions {
  readonly engine: Engine;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Model names this deployment serves. */
  readonly models: () => readonly string[];
  readonly heartbeatMs: number;
  readonly maxBodyBytes: number;
  /**
   * Where the Durable Streams door keeps ordinary streams (`openStreamStore`, beside the engine).
   * @defaultValue a store in this process's memory
   */
  readonly streams?: StreamStore;
  /** How long a Durable Streams long-poll read waits for data. @defaultValue 10000 */
  readonly streamLongPollMs?: number;
  /**
   * The API keys callers present once the store holds one (decision 032).
   * @defaultValue a store in this process's memory, with no key: the gateway is open
   */
  readonly keys?: KeyStore;
  /**
   * Where workers report their leases and breakers, for `/v1/ops/workers` (decision 041).
   * @defaultValue a store in this process's memory
   */
  readonly workers?: WorkerStatusStore;
  /**
   * The read models across answers for `/v1/ops/overview` and `/v1/ops/generations` (decision 037),
   * projected by this gateway from the engine's change feed.
   * @defaultValue a store in this process's memory, projected from the first read of those routes
   */
  readonly readModels?: ReadModelOptions;
  /** Requests per minute per key, and where the counters live. @defaultValue no limit */
  readonly limits?: RequestLimits;
  /** Browser origins whose pages may call the API (`LIFELINE_CORS_ORIGINS`). @defaultValue none */
  readonly corsOrigins?: readonly string[];
  /** Serve the chat page at `/`. @defaultValue true */
  readonly web?: boolean;
}

const WEB_ROOT = fileURLToPath(new URL("../web/public/", import.meta.url));

/** The HTTP front door (DESIGN §4): the API, SSE, WebSocket, long-poll, health, metrics and the web page. */
export class Gateway {
  readonly app: FastifyInstance;
  readonly #shutdown = new AbortController();
  readonly #readModels: GatewayReadModels;

  constructor(options: GatewayOptions) {
    // Every open stream listens for shutdown; thousands of them are expected, not a leak.
    setMaxListeners(0, this.#shutdown.signal);
    const app = Fastify({
      loggerInstance: options.logger as FastifyBaseLogger,
      bodyLimit: options.maxBodyBytes,
      // One line per request would drown the lines about generations; routes log what matters.
      logController: new LogController({ disableRequestLogging: true }),
      // Answered in the API's error shape below (`shutting_down`) rather than in Fastify's.
      return503OnClosing: false,
      forceCloseConnections: true,
      frameworkErrors: answerFrameworkError,
      clientErrorHandler: answerClientError,
    });
    // Only JSON bodies are accepted, and only in UTF-8; other types get 415.
    app.removeContentTypeParser("text/plain");
    installJsonBodyParser(app);
    installErrorHandling(app);
    // Open streams end first, so clients resume on another gateway instead of waiting; a request
    // that arrives on a kept-alive connection meanwhile is refused.
    app.addHook("preClose", async () => this.#shutdown.abort());
    app.addHook("onRequest", (_request, reply, done) => {
      const admit = (): void => {
        if (!this.#shutdown.signal.aborted) return done();
        void reply.header("connection", "close");
        done(new LifelineError("shutting_down"));
      };
      // Requests read in one poll of the sockets (a thousand starts at once) are handled a slice at
      // a time: once the slice is spent, the rest wait for the next turn (decision 061).
      runInSlice(admit);
    });
    const engine = guardEngine(options.engine);
    const keys = guardKeyStore(options.keys ?? new MemoryKeyStore());
    const auth = new Authenticator(keys);
    const slots = new AnswerSlots(keys, engine, options.limits?.answersPerKey ?? 0);
    const budget = new TokenBudget(keys, options.limits?.tokensPerMinute ?? 0);
    const starter = new GenerationStarter(engine, options.models, { slots, budget });
    installCors(app, options.corsOrigins ?? []);
    installAuthentication(app, auth);
    const countRequest = options.limits ? installRequestLimits(app, options.limits) : UNCOUNTED;
    const streams = new OpenStreams(keys, options.limits?.streamsPerKey ?? 0);
    installStreamLimits(app, streams);
    const routes = {
      ...options,
      engine,
      auth,
      starter,
      openStreams: streams,
      countRequest,
      owners: new Owners(engine),
      tails: new LogTails(engine, options.metrics),
    };
    healthRoutes(app, routes);
    generationRoutes(app, routes);
    eventRoutes(app, { ...routes, shutdown: this.#shutdown.signal });
    pollRoutes(app, { ...routes, shutdown: this.#shutdown.signal });
    websocketRoutes(app, { ...routes, shutdown: this.#shutdown.signal });
    // The protocol front doors (DESIGN §4): views of the same logs in the formats clients already speak.
    openAiRoutes(app, { ...routes, shutdown: this.#shutdown.signal });
    aiSdkRoutes(app, { ...routes, shutdown: this.#shutdown.signal });
    durableStreamRoutes(app, { ...routes, streams: options.streams ?? new MemoryStreamStore(), shutdown: this.#shutdown.signal });
    opsWorkerRoutes(app, { workers: options.workers ?? new MemoryWorkerStatusStore(), web: options.web ?? true });
    const readModels = new GatewayReadModels({
      engine,
      metrics: options.metrics,
      logger: options.logger,
      ...(options.readModels ? { readModels: options.readModels } : {}),
    });
    this.#readModels = readModels;
    opsAnswerRoutes(app, {
      store: readModels.store,
      stuckAfterMs: readModels.stuckAfterMs,
      beforeRead: () => readModels.start(),
      lastEntryAt: (id, kept) => readModels.lastEntryAt(id, kept),
    });
    if (options.web ?? true) clientBundleRoutes(app);
    // The pages: the chat page (index.html) at its root, the inspect page beside it.
    if (options.web ?? true) void app.register(fastifyStatic, { root: WEB_ROOT, prefix: ROUTE_PATHS.chatPage, index: "index.html" });
    this.app = app;
  }

  /** Listens and returns the base URL. */
  async listen(host: string, port: number): Promise<string> {
    // A burst of clients (a thousand answers started at once) must not overflow the accept queue:
    // Node's default backlog is 511, and connections past it are reset. The kernel caps it at somaxconn.
    await this.app.listen({ host, port, backlog: LISTEN_BACKLOG });
    const address = this.app.server.address();
    const actual = typeof address === "object" && address ? address.port : port;
    const shownHost = host.includes(":") ? `[${host}]` : host;
    return `http://${shownHost}:${actual}`;
  }

  async close(): Promise<void> {
    await this.#readModels.stop();
    await this.app.close();
  }
}
