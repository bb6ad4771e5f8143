import { defineConfig } from "vitest/config";

/**
 * Suites that start fleets: Redis Sentinel groups and Clusters, several Lifeline processes, Chromium,
 * Prometheus. (A store's conformance suite on one private PostgreSQL or Redis server is a part.)
 * They run one file at a time, after the rest, so that on a loaded 2-core machine no two of them
 * compete for the CPU (a starved fleet misses its leases and heartbeats, and a test of takeovers
 * would then prove the machine, not the code); the quiet ones below run three at a time before them.
 */
const FLEETS = [
  "test/cli/chaos.test.ts",
  "test/cli/idle-processes*.test.ts",
  "test/doors/openai-failure.test.ts",
  "test/engine/keys.test.ts",
  "test/engine/archive/archived-answers.test.ts",
  "test/engine/archive/archive-start.test.ts",
  "test/engine/archive/archiver.test.ts",
  "test/engine/archive/postgres-outage.test.ts",
  "test/engine/workers.test.ts",
  "test/doors/ai-sdk-failover.test.ts",
  "test/engine/redis.test.ts",
  "test/engine/streams/redis.test.ts",
  "test/deploy/**/*.test.ts",
  "test/failure/**/*.test.ts",
  "test/gateway/durable-streams/conformance-*.test.ts",
  "test/observability/distributed-traces.test.ts",
  "test/redis-harness.test.ts",
  "test/web/**/*.test.ts",
];

/**
 * Fleets that mostly wait: answers paced at 10 to 60 tokens a second, idle spells, Prometheus
 * scrapes, leases of 1.5 s or more renewed every third of one, takeovers counted as "at least one".
 * They run three at a time (two at a time kept about one of the two cores busy), before the other
 * fleets, which stay one at a time: a model streaming as fast as it can, Chromium, `lifeline chaos`,
 * the Sentinel and Cluster harness itself, a worker paused past its lease, a key slot's expiry, and
 * takeovers counted exactly under 1 s leases.
 */
const QUIET_FLEETS = [
  "test/cli/idle-processes*.test.ts",
  "test/deploy/**/*.test.ts",
  "test/doors/ai-sdk-failover.test.ts",
  "test/doors/openai-failure.test.ts",
  "test/engine/archive/archived-answers.test.ts",
  "test/engine/archive/archive-start.test.ts",
  "test/engine/archive/archiver.test.ts",
  "test/engine/archive/postgres-outage.test.ts",
  "test/engine/streams/redis.test.ts",
  "test/engine/workers.test.ts",
  "test/failure/cluster-mode.test.ts",
  "test/failure/distributed-chaos.test.ts",
  "test/failure/distributed-shutdown.test.ts",
  "test/failure/durable-streams-client.test.ts",
  "test/failure/lossy-failover.test.ts",
  "test/failure/projections-rebuild.test.ts",
  // In-process gateways: the Durable Streams conformance suite, on sqlite and on one Redis.
  "test/gateway/durable-streams/conformance-*.test.ts",
];

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    // Vitest's default is one worker less than the CPUs: one on a 2-core machine, which ran every
    // part one file at a time. Most parts wait on sockets and child processes, so three overlap well;
    // the quiet fleets run three at a time and the other fleets one at a time (below).
    maxWorkers: 3,
    reporters: ["default"],
    projects: [
      { extends: true, test: { name: "parts", include: ["test/**/*.test.ts"], exclude: FLEETS, sequence: { groupOrder: 0 } } },
      { extends: true, test: { name: "quiet-fleets", include: QUIET_FLEETS, maxWorkers: 3, sequence: { groupOrder: 1 } } },
      {
        extends: true,
        test: { name: "fleets", include: FLEETS, exclude: QUIET_FLEETS, fileParallelism: false, sequence: { groupOrder: 2 } },
      },
    ],
  },
});
