import { hostname } from "node:os";
import { z } from "zod";
import { postgresUrlProblem, redactedUrl } from "../engine/postgres/url.ts";
import { parseHostPorts } from "../engine/redis/host-ports.ts";

/** A browser origin: scheme, host and optional port, nothing more (no path, no wildcard). */
const ORIGIN = /^https?:\/\/(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/;

const hostPortList = z.union([z.literal(""), z.string().refine((s) => parseHostPorts(s) !== undefined, "must be host:port,host:port")]);

/**
 * Every option of Lifeline: an environment variable and a flag, validated once at start, then
 * frozen. The table is also the documentation (`lifeline help` prints it; README mirrors it).
 */
const OPTIONS = {
  host: { env: "LIFELINE_HOST", flag: "host", default: "127.0.0.1", doc: "Address the gateway listens on.", schema: z.string().min(1) },
  port: {
    env: "LIFELINE_PORT",
    flag: "port",
    default: "8787",
    doc: "Port the gateway listens on (0 picks a free one).",
    schema: z.coerce.number().int().min(0).max(65535),
  },
  engine: {
    env: "LIFELINE_ENGINE",
    flag: "engine",
    default: "sqlite",
    doc: "Storage engine: sqlite (durable, embedded), redis (distributed) or memory (nothing survives).",
    schema: z.enum(["sqlite", "redis", "memory"]),
  },
  dataDir: {
    env: "LIFELINE_DATA_DIR",
    flag: "data-dir",
    default: "./.lifeline",
    doc: "Folder of the sqlite data file.",
    schema: z.string().min(1),
  },
  sqliteSync: {
    env: "LIFELINE_SQLITE_SYNC",
    flag: "sqlite-sync",
    default: "normal",
    doc: "normal survives a killed process; full also survives power loss.",
    schema: z.enum(["normal", "full"]),
  },
  redisUrl: {
    env: "LIFELINE_REDIS_URL",
    flag: "redis-url",
    default: "",
    doc: "redis engine: one Redis server, redis://host:port[/db].",
    schema: z.union([z.literal(""), z.string().regex(/^rediss?:\/\/\S+$/, "must be redis://host:port")]),
  },
  redisSentinels: {
    env: "LIFELINE_REDIS_SENTINELS",
    flag: "redis-sentinels",
    default: "",
    doc: "redis engine: Sentinels as host:port,host:port.",
    schema: hostPortList,
  },
  redisMasterName: {
    env: "LIFELINE_REDIS_MASTER_NAME",
    flag: "redis-master-name",
    default: "lifeline",
    doc: "redis engine: the primary's name in Sentinel.",
    schema: z.string().min(1).max(200),
  },
  redisClusterNodes: {
    env: "LIFELINE_REDIS_CLUSTER_NODES",
    flag: "redis-cluster-nodes",
    default: "",
    doc: "redis engine: Cluster seed nodes as host:port,host:port.",
    schema: hostPortList,
  },
  redisPrefix: {
    env: "LIFELINE_REDIS_PREFIX",
    flag: "redis-prefix",
    default: "ll",
    doc: "redis engine: prefix of every key.",
    schema: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, "letters, digits, _ . - only"),
  },
  redisWaitReplicas: {
    env: "LIFELINE_REDIS_WAIT_REPLICAS",
    flag: "redis-wait-replicas",
    default: "",
    doc: "redis engine: replicas that must hold a create, a claim and an answer's end; on a Cluster, of each shard written to (default 1 with Sentinel or a Cluster, else 0).",
    schema: z.union([z.literal("").transform(() => undefined), z.coerce.number().int().min(0).max(16)]),
  },
  redisWaitTimeoutMs: {
    env: "LIFELINE_REDIS_WAIT_TIMEOUT_MS",
    flag: "redis-wait-timeout-ms",
    default: "500",
    doc: "redis engine: longest WAIT for those replicas.",
    schema: z.coerce.number().int().min(1).max(60_000),
  },
  redisRetentionSeconds: {
    env: "LIFELINE_REDIS_RETENTION_SECONDS",
    flag: "redis-retention-seconds",
    default: "86400",
    doc: "redis engine: how long a finished log is kept.",
    schema: z.coerce
      .number()
      .int()
      .min(1)
      .max(365 * 86400),
  },
  postgresUrl: {
    env: "LIFELINE_POSTGRES_URL",
    flag: "postgres-url",
    default: "",
    doc: "PostgreSQL for the archive of finished logs (and the read models), postgres://user:password@host:port/database; none by default.",
    schema: z.string().superRefine((url, ctx) => {
      const problem = url === "" ? undefined : postgresUrlProblem(url);
      if (problem) ctx.addIssue({ code: "custom", message: problem });
    }),
  },
  archive: {
    env: "LIFELINE_ARCHIVE",
    flag: "archive",
    default: "auto",
    doc: "Where finished logs are archived before the engine's retention drops them: postgres, sqlite (archive.db in the data dir, one machine), off, or auto (postgres when LIFELINE_POSTGRES_URL is set, else off).",
    schema: z.enum(["auto", "off", "sqlite", "postgres"]),
  },
  readModels: {
    env: "LIFELINE_READ_MODELS",
    flag: "read-models",
    default: "auto",
    doc: "Where the read models behind /ops are kept (docs/operations.md): postgres, sqlite (projections.db in the data dir; projections-redis-<prefix>.db with Redis), memory, or auto (postgres when LIFELINE_POSTGRES_URL is set, memory with the memory engine, else sqlite).",
    schema: z.enum(["auto", "sqlite", "postgres", "memory"]),
  },
  stuckAfterMs: {
    env: "LIFELINE_STUCK_AFTER_MS",
    flag: "stuck-after-ms",
    default: "20000",
    doc: "An answer running or queued with no entry for longer than this is stuck (/ops, lifeline_stuck_answers); the default is a model call's default idle timeout.",
    schema: z.coerce.number().int().min(100).max(86_400_000),
  },
  modelConfig: {
    env: "LIFELINE_CONFIG",
    flag: "config",
    default: "",
    doc: "JSON file of providers, models, fallbacks, timeouts and retry policy (docs/models.md).",
    schema: z.string().max(4096),
  },
  leaseMs: {
    env: "LIFELINE_LEASE_MS",
    flag: "lease-ms",
    default: "10000",
    doc: "Lease length; a dead worker's answer is taken over after at most this.",
    schema: z.coerce.number().int().min(100).max(3_600_000),
  },
  engineRetryMs: {
    env: "LIFELINE_ENGINE_RETRY_MS",
    flag: "engine-retry-ms",
    default: "60000",
    doc: "How long the engine may stay unreachable (at start or later) before the process exits 1.",
    schema: z.coerce.number().int().min(100).max(3_600_000),
  },
  heartbeatMs: {
    env: "LIFELINE_HEARTBEAT_MS",
    flag: "heartbeat-ms",
    default: "15000",
    doc: "Interval of heartbeats: SSE `: ping` comments and WebSocket pings.",
    schema: z.coerce.number().int().min(100).max(600_000),
  },
  streamLongPollMs: {
    env: "LIFELINE_STREAM_LONG_POLL_MS",
    flag: "stream-long-poll-ms",
    default: "10000",
    doc: "How long a Durable Streams long-poll read waits for data before it answers 204.",
    schema: z.coerce.number().int().min(100).max(600_000),
  },
  coalesceMs: {
    env: "LIFELINE_COALESCE_MS",
    flag: "coalesce-ms",
    default: "20",
    doc: "At most one delta entry per window, and one at a time: tokens close together, or arriving while a delta is being stored, become one; a token after a quiet window goes out at once; while the process is saturated the window grows to 100 ms and, as long as that lasts, to 400 ms for answers holding fewer than 32 tokens (0: one entry per piece the provider hands over: a token, or the tokens that came in together).",
    schema: z.coerce.number().int().min(0).max(5000),
  },
  workerConcurrency: {
    env: "LIFELINE_WORKER_CONCURRENCY",
    flag: "worker-concurrency",
    default: "256",
    doc: "Answers one worker runs at once.",
    schema: z.coerce.number().int().min(1).max(100_000),
  },
  workerName: {
    env: "LIFELINE_WORKER_NAME",
    flag: "worker-name",
    default: "",
    doc: "Worker name in logs and started entries (default host-pid).",
    schema: z.string().max(200),
  },
  metricsPort: {
    env: "LIFELINE_METRICS_PORT",
    flag: "metrics-port",
    default: "",
    doc: "Port on which `lifeline worker` serves GET /metrics for Prometheus (0 picks a free one; none by default). A gateway serves /metrics on its own port.",
    schema: z.union([z.literal("").transform(() => undefined), z.coerce.number().int().min(0).max(65535)]),
  },
  simTokensPerSecond: {
    env: "LIFELINE_SIM_TOKENS_PER_SECOND",
    flag: "sim-tokens-per-second",
    default: "30",
    doc: "Pace of the built-in sim model.",
    schema: z.coerce.number().positive().max(1_000_000),
  },
  maxBodyBytes: {
    env: "LIFELINE_MAX_BODY_BYTES",
    flag: "max-body-bytes",
    default: "1048576",
    doc: "Largest accepted request body (413 above).",
    schema: z.coerce
      .number()
      .int()
      .min(1024)
      .max(64 * 1024 * 1024),
  },
  requestsPerMinute: {
    env: "LIFELINE_REQUESTS_PER_MINUTE",
    flag: "requests-per-minute",
    default: "600",
    doc: "Requests per minute per API key once keys exist (429 above; shared through Redis); 0 for no limit.",
    schema: z.coerce.number().int().min(0).max(10_000_000),
  },
  answersPerKey: {
    env: "LIFELINE_ANSWERS_PER_KEY",
    flag: "answers-per-key",
    default: "64",
    doc: "Answers that have not ended, per API key, once keys exist (429 above; shared through the engine); 0 for no limit.",
    schema: z.coerce.number().int().min(0).max(1_000_000),
  },
  tokensPerMinute: {
    env: "LIFELINE_TOKENS_PER_MINUTE",
    flag: "tokens-per-minute",
    default: "0",
    doc: "Model tokens per minute per API key, each request counting its max_tokens (429 above; shared through the engine); 0 for no limit.",
    schema: z.coerce.number().int().min(0).max(1_000_000_000),
  },
  streamsPerKey: {
    env: "LIFELINE_STREAMS_PER_KEY",
    flag: "streams-per-key",
    default: "1000",
    doc: "Open streams (event streams, long-polls, WebSocket subscriptions) per API key across gateways, once keys exist (429 above); 0 for no limit.",
    schema: z.coerce.number().int().min(0).max(10_000_000),
  },
  corsOrigins: {
    env: "LIFELINE_CORS_ORIGINS",
    flag: "cors-origins",
    default: "",
    doc: "Browser origins allowed to call the API from their pages, as https://app.example,http://localhost:3000 (none by default).",
    schema: z.union([
      z.literal(""),
      z
        .string()
        .refine(
          (s) => s.split(",").every((o) => ORIGIN.test(o.trim())),
          "must be origins such as https://app.example:8443, comma-separated",
        ),
    ]),
  },
  logLevel: {
    env: "LIFELINE_LOG_LEVEL",
    flag: "log-level",
    default: "info",
    doc: "fatal, error, warn, info, debug, trace or silent.",
    schema: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]),
  },
} as const;

type Options = typeof OPTIONS;
export type Config = { readonly [K in keyof Options]: z.output<Options[K]["schema"]> };
export type OptionName = keyof Options;

export const OPTION_TABLE: readonly { name: OptionName; env: string; flag: string; default: string; doc: string }[] = (
  Object.keys(OPTIONS) as OptionName[]
).map((name) => ({
  name,
  env: OPTIONS[name].env,
  flag: `--${OPTIONS[name].flag}`,
  default: OPTIONS[name].default,
  doc: OPTIONS[name].doc,
}));

/** The flags `parseArgs` should accept. */
export const FLAG_SPEC: Record<string, { type: "string" }> = Object.fromEntries(
  Object.values(OPTIONS).map((option) => [option.flag, { type: "string" as const }]),
);

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

/** Flags win over the environment, which wins over defaults. Throws one error listing every problem. */
export function loadConfig(env: NodeJS.ProcessEnv, flags: Record<string, string | undefined>): Config {
  const problems: string[] = [];
  const out: Record<string, unknown> = {};
  for (const name of Object.keys(OPTIONS) as OptionName[]) {
    const option = OPTIONS[name];
    const fromFlag = flags[option.flag];
    const fromEnv = env[option.env];
    const raw = fromFlag ?? (fromEnv === undefined || fromEnv === "" ? option.default : fromEnv);
    const source = fromFlag !== undefined ? `--${option.flag}` : fromEnv ? option.env : "default";
    const parsed = (option.schema as z.ZodType).safeParse(raw);
    if (parsed.success) {
      out[name] = parsed.data;
      continue;
    }
    // A connection URL may carry a password: an error shows it redacted.
    const shown = name === "postgresUrl" ? redactedUrl(String(raw)) : raw;
    problems.push(`${source} = ${JSON.stringify(shown)}: ${parsed.error.issues.map((i) => i.message).join("; ")}`);
  }
  if (out.engine === "redis") {
    const given = [out.redisUrl, out.redisSentinels, out.redisClusterNodes].filter((v) => v !== "").length;
    if (given !== 1)
      problems.push(
        "LIFELINE_ENGINE=redis needs exactly one of LIFELINE_REDIS_URL, LIFELINE_REDIS_SENTINELS or LIFELINE_REDIS_CLUSTER_NODES",
      );
  }
  if (out.archive === "postgres" && out.postgresUrl === "") problems.push("LIFELINE_ARCHIVE=postgres needs LIFELINE_POSTGRES_URL");
  if (out.readModels === "postgres" && out.postgresUrl === "") problems.push("LIFELINE_READ_MODELS=postgres needs LIFELINE_POSTGRES_URL");
  if (problems.length > 0) throw new ConfigError(problems);
  if (out.workerName === "") out.workerName = `${hostname()}-${process.pid}`;
  return Object.freeze(out) as Config;
}
