import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { until } from "./waits.ts";

/**
 * A real `prometheus` server for tests (Debian: apt-get install prometheus): its own temp dir,
 * configuration and free loopback port (never the machine's own on 9090), scraping and evaluating
 * every second, SIGKILLed when the test process exits.
 */

const live = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});

/** Whether `name` is an executable on PATH. */
function onPath(name: string): boolean {
  return (process.env.PATH ?? "").split(delimiter).some((dir) => {
    if (dir === "") return false;
    try {
      accessSync(join(dir, name), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/**
 * Call first in a test that needs Prometheus. Without `prometheus` and `promtool` it fails under
 * `CI=true` (CI installs them: .ci/run), and elsewhere skips the test with a loud warning.
 */
export function requirePrometheus(ctx: { skip(note?: string): void }): void {
  if (onPath("prometheus") && onPath("promtool")) return;
  const why = "prometheus or promtool is not on PATH (Debian: apt-get install prometheus)";
  if (process.env.CI === "true") throw new Error(`${why}; CI must run the alert tests`);
  console.warn(`\n!!! SKIPPING A PROMETHEUS TEST: ${why}. These tests did not run. !!!\n`);
  ctx.skip(why);
}

/** `promtool <args>`: its exit code and what it printed. */
export function promtool(args: readonly string[]): { code: number | null; output: string } {
  const run = spawnSync("promtool", args, { encoding: "utf8" });
  return { code: run.status, output: `${run.stdout}${run.stderr}` };
}

/** A scrape job: a name and the `host:port` targets whose `/metrics` it reads. */
export interface ScrapeJob {
  readonly job: string;
  readonly targets: readonly string[];
}

/** One alert as `/api/v1/alerts` lists it. */
export interface PrometheusAlert {
  readonly labels: Record<string, string>;
  readonly annotations: Record<string, string>;
  readonly state: "pending" | "firing";
  readonly value: string;
}

export interface PrometheusServer {
  readonly url: string;
  /** `GET /api/v1/<path>`: the `data` of a successful answer; throws with Prometheus's error otherwise. */
  api<T>(path: string, query?: Record<string, string>): Promise<T>;
  /** The alerts pending or firing now. */
  alerts(): Promise<PrometheusAlert[]>;
  /** Waits until every target of every job has been scraped and is up, and the rules were evaluated since. */
  waitForTargetsUp(): Promise<void>;
  /** What it printed, for error messages. */
  output(): string;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  server.close();
  if (typeof address !== "object" || !address) throw new Error("no free port");
  return address.port;
}

/**
 * Starts `prometheus` scraping `jobs` every second and evaluating `ruleFiles` every second, and
 * resolves once it is ready. Retries on another port if the one it picked was taken meanwhile.
 */
export async function startPrometheus(options: { jobs: readonly ScrapeJob[]; ruleFiles: readonly string[] }): Promise<PrometheusServer> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await launch(options, await freePort());
    } catch (error) {
      if (attempt >= 5 || !/address already in use/i.test((error as Error).message)) throw error;
    }
  }
}

async function launch(options: { jobs: readonly ScrapeJob[]; ruleFiles: readonly string[] }, port: number): Promise<PrometheusServer> {
  const dir = mkdtempSync(join(tmpdir(), "lifeline-prometheus-"));
  const config = {
    global: { scrape_interval: "1s", scrape_timeout: "1s", evaluation_interval: "1s" },
    rule_files: options.ruleFiles,
    scrape_configs: options.jobs.map((j) => ({ job_name: j.job, static_configs: [{ targets: j.targets }] })),
  };
  // JSON is YAML: no YAML writer needed.
  writeFileSync(join(dir, "prometheus.yml"), JSON.stringify(config, null, 2));
  const child = spawn(
    "prometheus",
    [
      `--config.file=${join(dir, "prometheus.yml")}`,
      `--storage.tsdb.path=${join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
      "--web.console.templates=" + join(dir, "none"),
      "--web.console.libraries=" + join(dir, "none"),
      "--log.level=warn",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  live.add(child);
  let out = "";
  child.stdout?.on("data", (chunk: Buffer) => (out += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (out += chunk.toString()));
  const exited = once(child, "exit");
  const url = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      await exited;
    }
    live.delete(child);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await until(
      async () => {
        if (child.exitCode !== null) throw new Error(`prometheus exited with ${child.exitCode}:\n${out}`);
        return (await fetch(`${url}/-/ready`).catch(() => undefined))?.status === 200;
      },
      60_000,
      "prometheus to be ready",
    );
  } catch (error) {
    await stop();
    throw error;
  }
  const api = async <T>(path: string, query: Record<string, string> = {}): Promise<T> => {
    const search = new URLSearchParams(query).toString();
    const res = await fetch(`${url}/api/v1/${path}${search === "" ? "" : `?${search}`}`);
    const body = (await res.json()) as { status: string; data?: T; error?: string; errorType?: string };
    if (body.status !== "success") throw new Error(`prometheus ${path} ${JSON.stringify(query)}: ${body.errorType}: ${body.error}`);
    return body.data as T;
  };
  return {
    url,
    api,
    alerts: async () => (await api<{ alerts: PrometheusAlert[] }>("alerts")).alerts,
    waitForTargetsUp: async () => {
      const expected = options.jobs.reduce((n, j) => n + j.targets.length, 0);
      let upSince = 0;
      await until(
        async () => {
          const { activeTargets } = await api<{ activeTargets: { health: string; lastScrape: string }[] }>("targets");
          const up = activeTargets.filter((t) => t.health === "up");
          if (up.length < expected) return false;
          upSince ||= Date.now();
          return true;
        },
        60_000,
        `${expected} targets up`,
      );
      // Rules evaluated after the targets were up: an alert that is absent now was judged on real samples.
      await until(
        async () => {
          const { groups } = await api<{ groups: { lastEvaluation: string }[] }>("rules");
          return groups.length > 0 && groups.every((g) => Date.parse(g.lastEvaluation) > upSince + 2000);
        },
        60_000,
        "an evaluation of the rules on scraped samples",
      );
    },
    output: () => out,
    stop,
  };
}
