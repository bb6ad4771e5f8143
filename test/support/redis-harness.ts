import { spawn } from "node:child_process";
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";

/**
 * Real `redis-server` processes for tests: a standalone server, a Sentinel group and a Cluster,
 * each on free loopback ports (never the machine's own Redis on 6379), each with its own temp
 * dir and log file, all SIGKILLed when the test process exits.
 */

const HOST = "127.0.0.1";
/** How long a start or a wait may take before it fails with a clear error. */
const DEFAULT_TIMEOUT_MS = 20_000;
/** How long `stop()` lets a server shut down on SIGTERM before it sends SIGKILL. */
const STOP_GRACE_MS = 3_000;
/** How often a start is retried when another process took the free port first. */
const PORT_ATTEMPTS = 5;
const CLUSTER_SLOTS = 16_384;

/** A host and port, as Redis clients take them. */
export interface RedisEndpoint {
  readonly host: string;
  readonly port: number;
}

/** One running `redis-server` (data node or Sentinel) started by this harness. */
export interface RedisServer extends RedisEndpoint {
  /** `redis://127.0.0.1:<port>`. */
  readonly url: string;
  readonly pid: number;
  /** The server's own temp dir; removed by `stop()`. */
  readonly dir: string;
  readonly logFile: string;
  isRunning(): boolean;
  /** How the process ended (`SIGKILL`, `code 1`), or `""` while it runs. */
  exitStatus(): string;
  /** SIGKILL: no shutdown code runs; the temp dir stays until `stop()`. */
  kill(): Promise<void>;
  /** SIGTERM, SIGKILL after a grace period, then removes the temp dir. Safe to call twice. */
  stop(): Promise<void>;
  /** The last lines of the server's log and stderr, for error messages. */
  logTail(lines?: number): string;
}

/** Options of {@link startStandalone}. */
export interface StandaloneOptions {
  /** More `--option value` arguments for `redis-server`. @defaultValue `[]` */
  readonly args?: readonly string[];
  /** @defaultValue 20 000 ms */
  readonly timeoutMs?: number;
}

/** A primary, a replica and three Sentinels watching them. */
export interface SentinelGroup {
  readonly masterName: string;
  readonly sentinels: readonly RedisServer[];
  /** The primary at start; after a failover it is no longer the current one. */
  readonly primary: RedisServer;
  readonly replica: RedisServer;
  /** The primary the Sentinels name now. */
  currentPrimary(): Promise<RedisEndpoint>;
  /** SIGKILLs the primary the Sentinels name now and returns it. */
  killPrimary(): Promise<RedisServer>;
  /**
   * Resolves once every Sentinel names a primary other than the one `killPrimary()` killed and
   * that node answers ROLE as master.
   */
  waitForFailover(timeoutMs?: number): Promise<RedisServer>;
  /** Stops the Sentinels first (so they start no failover), then the data nodes. */
  stop(): Promise<void>;
}

/** Primaries of a Redis Cluster that together serve all 16 384 slots, each with its replicas when asked. */
export interface RedisCluster {
  readonly nodes: readonly RedisServer[];
  /** Each primary's replicas, by the primary's index in `nodes` (none unless `replicas` was given). */
  readonly replicas: readonly (readonly RedisServer[])[];
  /**
   * SIGKILLs primary `index` and resolves, with the replica promoted in its place, once every
   * surviving node reports `cluster_state:ok` and names that replica a primary (the node timeout is
   * 2 s). Needs a replica of that primary.
   */
  killPrimary(index: number): Promise<RedisServer>;
  stop(): Promise<void>;
}

// What a crashed or forgetful test run leaves behind is killed and removed when the process exits.
const liveProcesses = new Map<number, () => void>();
const liveDirs = new Set<string>();
process.on("exit", () => {
  for (const kill of liveProcesses.values()) kill();
  for (const dir of liveDirs) rmSync(dir, { recursive: true, force: true });
});

/** Whether `redis-server` is an executable on `env.PATH`. */
export function redisAvailable(env: NodeJS.ProcessEnv = process.env): boolean {
  return (env.PATH ?? "").split(delimiter).some((dir) => {
    if (dir === "") return false;
    try {
      accessSync(join(dir, "redis-server"), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/**
 * Call first in a test (or `beforeEach`) that needs Redis. Without `redis-server` it fails under
 * `CI=true`, so CI can never go green without running the Redis tests, and elsewhere skips the
 * test with a loud warning.
 */
export function requireRedis(ctx: { skip(note?: string): void }, env: NodeJS.ProcessEnv = process.env): void {
  if (redisAvailable(env)) return;
  const why = "redis-server is not on PATH (Debian: apt-get install redis-server)";
  if (env.CI === "true") throw new Error(`${why}; CI must run the Redis tests`);
  console.warn(`\n!!! SKIPPING A REDIS TEST: ${why}. These tests did not run. !!!\n`);
  ctx.skip(why);
}

/** One `redis-server` on a free port with no persistence, resolved once it answers PING. */
export async function startStandalone(opts: StandaloneOptions = {}): Promise<RedisServer> {
  const extra = opts.args ?? [];
  return launch("standalone", ({ port, dir, logFile }) => [...dataNodeArgs(port, dir, logFile), ...extra], opts.timeoutMs);
}

/** Starts a primary, a replica of it and three Sentinels; resolves once all of them agree. */
export async function startSentinelGroup(opts: { masterName?: string; timeoutMs?: number } = {}): Promise<SentinelGroup> {
  const masterName = opts.masterName ?? "lifeline";
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const started: RedisServer[] = [];
  const sentinels: RedisServer[] = [];
  try {
    const primary = await startStandalone({ timeoutMs });
    started.push(primary);
    const replica = await startStandalone({
      timeoutMs,
      args: ["--replicaof", HOST, String(primary.port), "--replica-serve-stale-data", "yes"],
    });
    started.push(replica);
    await waitUntil(`replica ${replica.port} in sync with primary ${primary.port}`, timeoutMs, async () =>
      /master_link_status:up/.test(await command(replica, ["INFO", "replication"])),
    );
    // Started after the sync so that each Sentinel's first INFO of the primary already lists the
    // replica; otherwise it learns of it only on the next INFO, 10 s later.
    await settleAll([0, 1, 2].map(async () => void sentinels.push(await startSentinel(masterName, primary.port, timeoutMs))));
    for (const sentinel of sentinels) {
      await waitUntil(`sentinel ${sentinel.port} to see the replica and the other two sentinels`, timeoutMs, async () => {
        const replicas = await records(sentinel, ["SENTINEL", "REPLICAS", masterName]);
        const peers = await records(sentinel, ["SENTINEL", "SENTINELS", masterName]);
        const replicaUp = replicas.some((r) => r.port === String(replica.port) && r.flags === "slave" && r["master-link-status"] === "ok");
        return replicaUp && peers.length === 2 && (await command(sentinel, ["SENTINEL", "CKQUORUM", masterName])).startsWith("OK");
      });
    }
    return sentinelGroup(masterName, sentinels, primary, replica);
  } catch (err) {
    await Promise.all([...sentinels, ...started].map((server) => server.stop()));
    throw err;
  }
}

/**
 * Starts `primaries` cluster-enabled servers, assigns the slots evenly, gives each primary
 * `replicas` replicas (none by default) and waits for `cluster_state:ok` with every replica in sync.
 */
export async function startCluster(opts: { primaries?: number; replicas?: number; timeoutMs?: number } = {}): Promise<RedisCluster> {
  const count = opts.primaries ?? 3;
  const replicasEach = opts.replicas ?? 0;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const started: RedisServer[] = [];
  const busPorts = new Map<RedisServer, number>();
  const stop = async (): Promise<void> => void (await Promise.all(started.map((node) => node.stop())));
  try {
    const all: RedisServer[] = [];
    await settleAll(
      Array.from({ length: count * (1 + replicasEach) }, async (_, i) => {
        let busPort = 0;
        const node = await launch(
          "cluster node",
          ({ port, dir, logFile, secondPort }) => {
            busPort = secondPort;
            // An explicit bus port (Redis >= 7.0), so it is free too, not port + 10 000.
            const cluster = ["--cluster-enabled", "yes", "--cluster-port", String(secondPort), "--cluster-node-timeout", "2000"];
            return [...dataNodeArgs(port, dir, logFile), ...cluster, "--cluster-config-file", join(dir, `nodes-${port}.conf`)];
          },
          timeoutMs,
        );
        started.push(node);
        busPorts.set(node, busPort);
        all[i] = node;
      }),
    );
    const primaries = all.slice(0, count);
    const replicas = primaries.map((_, i) => all.slice(count + i * replicasEach, count + (i + 1) * replicasEach));
    // What `redis-cli --cluster create --cluster-replicas N` does, minus its dependence on redis-cli.
    for (const [i, node] of primaries.entries()) {
      const first = Math.floor((i * CLUSTER_SLOTS) / count);
      const last = Math.floor(((i + 1) * CLUSTER_SLOTS) / count) - 1;
      await command(node, ["CLUSTER", "SET-CONFIG-EPOCH", String(i + 1)]);
      await command(node, ["CLUSTER", "ADDSLOTSRANGE", String(first), String(last)]);
    }
    const [seed, ...others] = all;
    for (const node of others) await command(seed ?? node, ["CLUSTER", "MEET", HOST, String(node.port), String(busPorts.get(node))]);
    for (const node of all) {
      await waitUntil(`cluster node ${node.port} to know all ${all.length} nodes`, timeoutMs, async () =>
        (await command(node, ["CLUSTER", "INFO"])).includes(`cluster_known_nodes:${all.length}\r\n`),
      );
    }
    for (const [i, group] of replicas.entries()) {
      const primaryId = (await command(primaries[i]!, ["CLUSTER", "MYID"])).trim();
      for (const replica of group) await command(replica, ["CLUSTER", "REPLICATE", primaryId]);
    }
    for (const node of all) {
      await waitUntil(`cluster node ${node.port} to report cluster_state:ok with ${all.length} nodes`, timeoutMs, async () => {
        const info = await command(node, ["CLUSTER", "INFO"]);
        return info.includes("cluster_state:ok") && info.includes(`cluster_known_nodes:${all.length}\r\n`);
      });
    }
    for (const [i, group] of replicas.entries()) {
      for (const replica of group) {
        await waitUntil(`replica ${replica.port} in sync with primary ${primaries[i]!.port}`, timeoutMs, async () =>
          (await command(replica, ["INFO", "replication"])).includes("master_link_status:up"),
        );
      }
    }
    const killPrimary = async (index: number): Promise<RedisServer> => {
      const primary = primaries[index];
      const candidates = replicas[index] ?? [];
      if (!primary || candidates.length === 0) throw new Error(`primary ${index} has no replica to take its place`);
      await primary.kill();
      const survivors = all.filter((node) => node !== primary);
      let promoted: RedisServer | undefined;
      await waitUntil(`a replica of ${primary.port} promoted, and cluster_state:ok everywhere`, timeoutMs, async () => {
        for (const replica of candidates) {
          if ((await command(replica, ["INFO", "replication"])).includes("role:master")) promoted = replica;
        }
        if (!promoted) return false;
        for (const node of survivors) if (!(await command(node, ["CLUSTER", "INFO"])).includes("cluster_state:ok")) return false;
        return true;
      });
      return promoted!;
    };
    return { nodes: primaries, replicas, killPrimary, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Like `Promise.all`, but waits for every promise before it throws the first failure, so nothing starts after a cleanup. */
async function settleAll(promises: Promise<unknown>[]): Promise<void> {
  const failed = (await Promise.allSettled(promises)).find((r) => r.status === "rejected");
  if (failed) throw failed.reason;
}

function dataNodeArgs(port: number, dir: string, logFile: string): string[] {
  const persistence = ["--save", "", "--appendonly", "no"];
  // Redis 7 waits 5 s before a diskless full sync in case more replicas come; a test has only one.
  const replication = ["--repl-diskless-sync-delay", "0"];
  return ["--port", String(port), "--bind", HOST, ...persistence, ...replication, "--dir", dir, "--logfile", logFile];
}

function startSentinel(masterName: string, primaryPort: number, timeoutMs: number): Promise<RedisServer> {
  return launch(
    "sentinel",
    ({ port, dir, logFile }) => {
      // Sentinel rewrites this file (myid, known replicas and peers), so it must be its own and writable.
      const conf = join(dir, "sentinel.conf");
      writeFileSync(
        conf,
        [
          `port ${port}`,
          `bind ${HOST}`,
          `dir "${dir}"`,
          `logfile "${logFile}"`,
          "sentinel resolve-hostnames no",
          `sentinel monitor ${masterName} ${HOST} ${primaryPort} 2`,
          `sentinel down-after-milliseconds ${masterName} 1000`,
          `sentinel failover-timeout ${masterName} 5000`,
          `sentinel parallel-syncs ${masterName} 1`,
          "",
        ].join("\n"),
      );
      return [conf, "--sentinel"];
    },
    timeoutMs,
  );
}

function sentinelGroup(masterName: string, sentinels: RedisServer[], primary: RedisServer, replica: RedisServer): SentinelGroup {
  let killed: RedisServer | undefined;
  const dataNodes = [primary, replica];
  const named = async (sentinel: RedisServer): Promise<RedisEndpoint> => {
    const reply = await command(sentinel, ["SENTINEL", "GET-MASTER-ADDR-BY-NAME", masterName]);
    const [host, port] = reply.split("\n");
    return { host: host ?? "", port: Number(port) };
  };
  const currentPrimary = async (): Promise<RedisEndpoint> => {
    const errors: unknown[] = [];
    for (const sentinel of sentinels.filter((s) => s.isRunning())) {
      try {
        return await named(sentinel);
      } catch (err) {
        errors.push(err);
      }
    }
    throw new Error(`no sentinel named the primary of ${masterName}: ${errors.map(String).join("; ")}`);
  };
  return {
    masterName,
    sentinels,
    primary,
    replica,
    currentPrimary,
    killPrimary: async () => {
      const current = await currentPrimary();
      const node = dataNodes.find((n) => n.port === current.port);
      if (!node) throw new Error(`sentinels name ${current.host}:${current.port}, which this harness did not start`);
      await node.kill();
      killed = node;
      return node;
    },
    waitForFailover: async (timeoutMs = DEFAULT_TIMEOUT_MS) => {
      const gone = killed;
      if (!gone) throw new Error("waitForFailover() needs a killPrimary() first");
      const port = await waitUntil(`sentinels to promote a primary other than ${gone.port}`, timeoutMs, async () => {
        const answers = await Promise.all(sentinels.filter((s) => s.isRunning()).map(named));
        const ports = new Set(answers.map((e) => e.port));
        const [only] = ports;
        return ports.size === 1 && only !== undefined && only !== gone.port ? only : undefined;
      });
      const promoted = dataNodes.find((n) => n.port === port);
      if (!promoted) throw new Error(`sentinels promoted ${HOST}:${port}, which this harness did not start`);
      await waitUntil(`promoted node ${port} to answer ROLE as master`, timeoutMs, async () =>
        (await command(promoted, ["ROLE"])).startsWith("master"),
      );
      return promoted;
    },
    stop: async () => {
      await Promise.all(sentinels.map((s) => s.stop()));
      await Promise.all(dataNodes.map((n) => n.stop()));
    },
  };
}

interface LaunchPlace {
  readonly port: number;
  /** A second free port, for a cluster bus. */
  readonly secondPort: number;
  readonly dir: string;
  readonly logFile: string;
}

/** Spawns `redis-server` with the given args until one answers PING as itself, retrying on a port taken meanwhile. */
async function launch(label: string, args: (place: LaunchPlace) => string[], timeoutMs = DEFAULT_TIMEOUT_MS): Promise<RedisServer> {
  for (let attempt = 1; ; attempt++) {
    const dir = mkdtempSync(join(tmpdir(), "lifeline-redis-"));
    liveDirs.add(dir);
    const place = { port: await freePort(), secondPort: await freePort(), dir, logFile: join(dir, "redis.log") };
    const server = spawnServer(place, args(place));
    try {
      await waitUntil(`${label} redis-server on port ${place.port} to answer PING`, timeoutMs, async () => {
        if (!server.isRunning()) throw new StartAborted(`redis-server exited (${server.exitStatus()})`);
        if ((await command(server, ["PING"])) !== "PONG") return false;
        // Between freePort() and our bind another process may have taken the port: check who answered.
        const info = await command(server, ["INFO", "server"]);
        if (!info.includes(`process_id:${server.pid}\r\n`)) throw new StartAborted("another process answers on its port", true);
        return true;
      });
      return server;
    } catch (err) {
      // The log first: stop() removes the server's dir, and with it what says the port was taken.
      await server.kill();
      const tail = server.logTail();
      await server.stop();
      const portTaken = (err instanceof StartAborted && err.portTaken) || tail.includes("Address already in use");
      if (portTaken && attempt < PORT_ATTEMPTS) continue;
      throw new Error(`${label} redis-server did not start (attempt ${attempt}): ${errorText(err)}\n--- log tail ---\n${tail}`);
    }
  }
}

/** Ends a {@link waitUntil} at once: waiting longer cannot help. */
class StartAborted extends Error {
  constructor(
    message: string,
    readonly portTaken = false,
  ) {
    super(message);
  }
}

function spawnServer(place: LaunchPlace, args: string[]): RedisServer {
  const child = spawn("redis-server", args, { cwd: place.dir, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  let exitedHow = "";
  const keep = (chunk: Buffer): void => void (output = (output + chunk.toString()).slice(-16_384));
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  let running = true;
  const exited = new Promise<void>((resolve) => {
    const done = (): void => {
      running = false;
      exitedHow = child.signalCode ?? `code ${child.exitCode}`;
      if (child.pid !== undefined) liveProcesses.delete(child.pid);
      resolve();
    };
    child.once("exit", done);
    child.once("error", (err) => {
      output += `\nspawn failed: ${err.message}`;
      done();
    });
  });
  if (child.pid !== undefined) liveProcesses.set(child.pid, () => child.kill("SIGKILL"));

  const kill = async (): Promise<void> => {
    if (running) child.kill("SIGKILL");
    await exited;
  };
  return {
    host: HOST,
    port: place.port,
    url: `redis://${HOST}:${place.port}`,
    pid: child.pid ?? -1,
    dir: place.dir,
    logFile: place.logFile,
    isRunning: () => running,
    exitStatus: () => exitedHow,
    kill,
    stop: async () => {
      if (running) {
        child.kill("SIGTERM");
        await Promise.race([exited, sleep(STOP_GRACE_MS, undefined, { ref: false })]);
      }
      await kill();
      rmSync(place.dir, { recursive: true, force: true });
      liveDirs.delete(place.dir);
    },
    logTail: (lines = 30) => {
      const log = existsSync(place.logFile) ? readFileSync(place.logFile, "utf8") : "";
      return [...log.split("\n"), ...output.split("\n")]
        .filter((l) => l.trim() !== "")
        .slice(-lines)
        .join("\n");
    },
  };
}

/** A port that was free a moment ago: bind port 0, read the port, close. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, HOST, () => {
      const address = probe.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      probe.close(() => (port > 0 ? resolve(port) : reject(new Error("the OS gave no free port"))));
    });
  });
}

/** One command on a fresh, non-retrying connection; the raw reply. */
async function call(node: RedisEndpoint, [name, ...args]: [string, ...string[]]): Promise<unknown> {
  const client = new Redis({
    host: node.host,
    port: node.port,
    lazyConnect: true,
    connectTimeout: 1_000,
    commandTimeout: 2_000,
    enableReadyCheck: false,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  client.on("error", () => undefined); // surfaced through the rejected promise instead
  try {
    await client.connect();
    return await client.call(name, ...args);
  } finally {
    client.disconnect();
  }
}

/** {@link call}, with the reply as text (array items joined by newlines). */
async function command(node: RedisEndpoint, args: [string, ...string[]]): Promise<string> {
  const flatten = (reply: unknown): string => (Array.isArray(reply) ? reply.map(flatten).join("\n") : String(reply));
  return flatten(await call(node, args));
}

/** A `SENTINEL REPLICAS|SENTINELS` reply (one flat field, value list per node) as records. */
async function records(node: RedisEndpoint, args: [string, ...string[]]): Promise<Record<string, string>[]> {
  const reply = await call(node, args);
  if (!Array.isArray(reply)) throw new Error(`${args.join(" ")} answered ${String(reply)}`);
  return reply.map((fields: unknown) => {
    const list = Array.isArray(fields) ? fields.map(String) : [];
    const record: Record<string, string> = {};
    for (let i = 0; i + 1 < list.length; i += 2) record[list[i] ?? ""] = list[i + 1] ?? "";
    return record;
  });
}

/**
 * Polls `probe` every 100 ms until it returns something other than `false`/`undefined`; fails after
 * `timeoutMs` with the last error the probe threw. A {@link StartAborted} ends the wait at once.
 */
async function waitUntil<T>(what: string, timeoutMs: number, probe: () => Promise<T | false | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== false && value !== undefined) return value;
    } catch (err) {
      if (err instanceof StartAborted) throw err;
      lastError = err;
    }
    if (Date.now() > deadline) {
      const last = lastError === undefined ? "" : ` (last error: ${errorText(lastError)})`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last}`);
    }
    await sleep(100);
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
