import { Cluster, Redis, type ClusterNode, type RedisOptions } from "ioredis";
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
 * Opens one connection (or one Cluster client) to the target. With `autoPipelining`, the commands
 * issued in one turn of the event loop go out in one write (one per node on a Cluster): a worker's
 * appends for many answers, a gateway's reads for many followers.
 */
export function connectRedis(target: RedisTarget, name: string, options: { autoPipelining?: boolean } = {}): RedisClient {
  const base: RedisOptions = { ...BASE, enableAutoPipelining: options.autoPipelining ?? false };
  switch (target.mode) {
    case "standalone":
      return new Redis(target.url, { ...base, connectionName: name });
    case "sentinel":
      return new Redis({
        ...base,
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
          enableAutoPipelining: options.autoPipelining ?? false,
          shardedSubscribers: true,
          maxRedirections: 32,
          retryDelayOnFailover: 200,
          retryDelayOnClusterDown: 200,
        },
      );
  }
}
