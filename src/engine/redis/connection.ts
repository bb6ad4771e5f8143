import type { EventEmitter } from "node:events";
import { Cluster, Redis, type ClusterNode, type RedisOptions } from "ioredis";
import type { Logger } from "../../observability/logger.ts";
import type { HostPort } from "./host-ports.ts";

export type { HostPort };
export type RedisClient = Redis | Cluster;

/** Where Redis is: one server, a Sentinel-watched primary, or a Cluster. */
export type RedisTarget =
  | { readonly mode: "standalone"; readonly url: string }
  | { readonly mode: "sentinel"; readonly sentinels: readonly HostPort[]; readonly masterName: string }
  | { readonly mode: "cluster"; readonly nodes: readonly HostPort[] };

const BASE: RedisOptions = {
  // A failover turns the old primary into a replica: reconnect and resend instead of failing.
  reconnectOnError: (error) => (/^(READONLY|LOADING|MASTERDOWN)/.test(error.message) ? 2 : false),
  maxRetriesPerRequest: 40,
  enableOfflineQueue: true,
  connectTimeout: 5000,
};

/**
 * Opens one connection (or one Cluster client) to the target. With `writePerTurn`, the commands
 * issued in one turn of the event loop go out in one write (one per node on a Cluster): a worker's
 * appends for many answers, a gateway's reads for many followers ({@link writeOncePerTurn}).
 */
export function connectRedis(
  target: RedisTarget,
  name: string,
  options: { writePerTurn?: boolean; logger?: Logger | undefined } = {},
): RedisClient {
  const client = open(target, name);
  reportConnectionErrors(client, name, options.logger);
  if (options.writePerTurn === true) {
    if (client instanceof Cluster) {
      client.on("+node", writeOncePerTurn);
      for (const node of client.nodes("all")) writeOncePerTurn(node);
    } else {
      writeOncePerTurn(client);
    }
  }
  return client;
}

/** While errors keep coming, at most one line per this long. */
export const ERROR_LOG_EVERY_MS = 10_000;

/**
 * Listens to a connection's errors (an `error` event nobody listens to would end the process) and
 * logs them as warnings named after the connection: the first of a spell at once, then at most one
 * line per {@link ERROR_LOG_EVERY_MS} with how many came since the last (`repeated`), unless the
 * error says something new, and one line when it is ready again after errors. ioredis emits an
 * error at every retry while Redis is away, and a process holds up to ten connections: an outage
 * of a minute was thousands of identical lines. A Cluster reports its nodes' connections as
 * `node error` (a shard failing over; the Cluster as a whole stays ready): those go through the
 * same count.
 */
export function reportConnectionErrors(client: EventEmitter, name: string, logger: Logger | undefined, now: () => number = Date.now): void {
  let loggedAt = -Infinity;
  let lastMessage = "";
  let unlogged = 0;
  let erred = false;
  const onError = (error: Error): void => {
    erred = true;
    if (now() - loggedAt < ERROR_LOG_EVERY_MS && error.message === lastMessage) {
      unlogged += 1;
      return;
    }
    logger?.warn({ connection: name, err: error.message, ...(unlogged > 0 ? { repeated: unlogged } : {}) }, "redis connection error");
    loggedAt = now();
    lastMessage = error.message;
    unlogged = 0;
  };
  client.on("error", onError);
  if (client instanceof Cluster) client.on("node error", onError);
  client.on("ready", () => {
    if (!erred) return;
    logger?.info({ connection: name, ...(unlogged > 0 ? { repeated: unlogged } : {}) }, "redis connection ready again");
    erred = false;
    loggedAt = -Infinity;
    lastMessage = "";
    unlogged = 0;
  });
}

function open(target: RedisTarget, name: string): RedisClient {
  switch (target.mode) {
    case "standalone":
      return new Redis(target.url, { ...BASE, connectionName: name });
    case "sentinel":
      return new Redis({
        ...BASE,
        connectionName: name,
        sentinels: target.sentinels.map((s) => ({ host: s.host, port: s.port })),
        name: target.masterName,
        sentinelRetryStrategy: (times) => Math.min(times * 100, 1000),
        // Not `failoverDetector`: when it fires during a reconnect, ioredis ends the client for good.
      });
    case "cluster":
      return new Cluster(
        target.nodes.map((n): ClusterNode => ({ host: n.host, port: n.port })),
        {
          redisOptions: { ...BASE, connectionName: name },
          shardedSubscribers: true,
          maxRedirections: 32,
          retryDelayOnFailover: 200,
          retryDelayOnClusterDown: 200,
        },
      );
  }
}

const WRITES_PER_TURN = new WeakSet<Redis>();

/**
 * Makes the commands `redis` is given in one turn of the event loop leave in one write, and hands
 * each reply over as soon as it is read: the first command of a turn corks the connection's socket,
 * and a `setImmediate` uncorks it, so Node writes all the turn's commands with one `writev`. Not a
 * `process.nextTick`: that runs after each callback, and a thousand coalescing windows closing in
 * one phase of timers, or a thousand sockets read in one poll, were a thousand writes.
 *
 * Not ioredis's `enableAutoPipelining`, which also writes once per turn: it sends a turn's commands
 * as one pipeline, hands their replies over only once the last one is in, and sends the next turn's
 * commands only then. A gateway's thousand reads of a turn then held every page they read across
 * the young generation's collections until the slowest came in, and their followers took them all
 * in one burst (decision 055).
 */
function writeOncePerTurn(redis: Redis): void {
  if (WRITES_PER_TURN.has(redis)) return;
  WRITES_PER_TURN.add(redis);
  const send = redis.sendCommand.bind(redis);
  let corked: Redis["stream"] | undefined;
  const uncork = (): void => {
    const stream = corked;
    corked = undefined;
    stream?.uncork();
  };
  redis.sendCommand = (command, stream) => {
    // A pipeline or a transaction writes to a stream of its own, already in one write.
    if (corked === undefined && stream === undefined && redis.stream !== undefined && redis.stream.writable) {
      corked = redis.stream;
      corked.cork();
      setImmediate(uncork);
    }
    return send(command, stream);
  };
}
