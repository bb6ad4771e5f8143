import { fork, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { startLifeline, type LifelineProcess } from "../../src/chaos/lifeline-process.ts";
import { PROBE_NODE_ARGS, benchFile, probeEnv, type MeasuredProcess } from "./loop-probes.ts";
import type { ReaderApi } from "./peer-readers.ts";
import { wallNow } from "./protocol.ts";
import type { FromModel, ModelPace, ToModel } from "./stamped-model.ts";

/** How long a Lifeline process may take to stop on SIGTERM after a phase. */
const STOP_GRACE_MS = 15_000;

/** The systems `bench/peers.ts` compares. */
export const SYSTEMS = ["resumable-stream", "distributed", "embedded"] as const;
export type SystemName = (typeof SYSTEMS)[number];

/** One system, started for one phase. */
export interface RunningSystem {
  readonly url: string;
  readonly api: ReaderApi;
  /** Its processes; CPU per token of the system is theirs together (redis-server included where it is used). */
  readonly processes: readonly MeasuredProcess[];
  stop(): Promise<void>;
}

export interface SystemOptions {
  /** Where the phase keeps its files: probe reports, the model configuration, the sqlite data. */
  readonly dir: string;
  readonly modelUrl: string;
  readonly redis: { readonly url: string; readonly pid: number };
  /** Prefix of every Redis key of the phase. */
  readonly prefix: string;
  /** Answers at once: the workers' concurrency, shared between them. */
  readonly concurrency: number;
  /** Workers of the distributed system (each takes its share of `concurrency`). @defaultValue 1 */
  readonly workers?: number;
  /** When set, the system's Node processes record a CPU profile of the measured window into this directory. */
  readonly profileDir?: string;
  /** Names the profiles of this phase. */
  readonly profileName: string;
  /** Node flags of the Lifeline processes only (V8's heap flags, say), after Lifeline's own: they hold over them. */
  readonly nodeOptions?: readonly string[];
}

/** Forks a bench-owned child with the probe loaded, and waits for its `ready` message. */
async function forkProbed<Ready extends { type: "ready" }>(
  file: string,
  args: string[],
  env: Record<string, string>,
): Promise<{ child: ChildProcess; ready: Ready }> {
  const child = fork(benchFile(file), args, { execArgv: [...PROBE_NODE_ARGS], env: { ...process.env, ...env }, stdio: "inherit" });
  const ready = await new Promise<Ready>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`${file} exited with ${code} before it was ready`)));
    child.on("message", (message: { type: string }) => {
      if (message.type === "ready") resolve(message as Ready);
    });
  });
  return { child, ready };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGKILL");
  await exited;
}

/** The stamped model of a phase (`stamped-model.ts`), in its own process. */
export class StampedModel {
  readonly #listeners = new Set<(message: FromModel) => void>();

  private constructor(
    readonly child: ChildProcess,
    readonly url: string,
    readonly process: MeasuredProcess,
  ) {
    child.on("message", (message: FromModel) => {
      for (const listener of this.#listeners) listener(message);
    });
  }

  static async start(pace: ModelPace, dir: string, profile?: string): Promise<StampedModel> {
    const env = probeEnv(dir, "model", profile);
    const { child, ready } = await forkProbed<Extract<FromModel, { type: "ready" }>>("stamped-model.ts", [JSON.stringify(pace)], env);
    return new StampedModel(child, ready.url, { name: "model", pid: child.pid ?? -1, probeFile: env.LOOP_PROBE_OUT });
  }

  /** The model's clock minus ours, from the IPC round trip with the smallest delay. */
  async clockOffset(samples = 25): Promise<{ offsetMs: number; roundTripMs: number }> {
    let best = { offsetMs: 0, roundTripMs: Infinity };
    for (let seq = 0; seq < samples; seq++) {
      const sent = wallNow();
      const now = await new Promise<number>((resolve) => {
        const listener = (message: FromModel): void => {
          if (message.type !== "clock" || message.seq !== seq) return;
          this.#listeners.delete(listener);
          resolve(message.now);
        };
        this.#listeners.add(listener);
        this.child.send({ type: "clock", seq } satisfies ToModel);
      });
      const back = wallNow();
      if (back - sent < best.roundTripMs) best = { offsetMs: now - (sent + back) / 2, roundTripMs: back - sent };
    }
    return best;
  }

  /** Passes the readers' acknowledgements on (the closed loop). */
  acks(acks: number[]): void {
    this.child.send({ type: "acks", acks } satisfies ToModel);
  }

  stop(): Promise<void> {
    return stopChild(this.child);
  }
}

/** Starts one system for one phase, on the model at `options.modelUrl`. */
export async function startSystem(name: SystemName, options: SystemOptions): Promise<RunningSystem> {
  const redis: MeasuredProcess = { name: "redis-server", pid: options.redis.pid };
  const profileOf = (process: string): string | undefined =>
    options.profileDir === undefined ? undefined : join(options.profileDir, `${options.profileName}-${process}.cpuprofile`);
  if (name === "resumable-stream") {
    const env = {
      ...probeEnv(options.dir, "producer", profileOf("producer")),
      REDIS_URL: options.redis.url,
      MODEL_URL: options.modelUrl,
      KEY_PREFIX: options.prefix,
    };
    const { child, ready } = await forkProbed<{ type: "ready"; url: string }>("rs-producer.ts", [], env);
    return {
      url: ready.url,
      api: "resumable-stream",
      processes: [{ name: "producer", pid: child.pid ?? -1, probeFile: env.LOOP_PROBE_OUT }, redis],
      stop: () => stopChild(child),
    };
  }
  // The model configuration file of docs/models.md: one OpenAI-compatible provider, the stamped model.
  const config = join(options.dir, "models.json");
  const models = {
    providers: { bench: { type: "openai-compatible", baseUrl: options.modelUrl } },
    models: { stamped: { provider: "bench" } },
  };
  writeFileSync(config, JSON.stringify(models));
  const workers = options.workers ?? 1;
  const common = {
    LIFELINE_CONFIG: config,
    LIFELINE_WORKER_CONCURRENCY: String(Math.ceil(options.concurrency / workers)),
    LIFELINE_LOG_LEVEL: "warn",
  };
  const lifeline = async (command: "start" | "gateway" | "worker", name: string, env: Record<string, string>): Promise<LifelineProcess> => {
    return startLifeline(
      command,
      { ...common, ...env, ...probeEnv(options.dir, name, profileOf(name)), NODE_OPTIONS: PROBE_NODE_ARGS.join(" ") },
      options.nodeOptions,
    );
  };
  const measured = (name: string, p: LifelineProcess): MeasuredProcess => ({
    name,
    pid: p.child.pid ?? -1,
    probeFile: probeEnv(options.dir, name).LOOP_PROBE_OUT,
  });
  // Graceful first (the profile is written by then), SIGKILL for a process that does not end in time.
  const stopAll = async (processes: readonly LifelineProcess[]): Promise<void> => {
    await Promise.all(
      processes.map(async (p) => {
        const killer = setTimeout(() => void p.kill(), STOP_GRACE_MS);
        await p.terminate();
        clearTimeout(killer);
      }),
    );
  };
  if (name === "distributed") {
    // The phase's own data dir: the read models of earlier runs (in `.lifeline` by default) are not this run's.
    const engine = {
      LIFELINE_ENGINE: "redis",
      LIFELINE_REDIS_URL: options.redis.url,
      LIFELINE_REDIS_PREFIX: options.prefix,
      LIFELINE_DATA_DIR: join(options.dir, "data"),
    };
    // The first worker is "worker", as with one; the others "worker2", "worker3", ….
    const names = Array.from({ length: workers }, (_, i) => (i === 0 ? "worker" : `worker${i + 1}`));
    const workerProcesses: LifelineProcess[] = [];
    let gateway: LifelineProcess;
    try {
      for (const name of names) workerProcesses.push(await lifeline("worker", name, engine));
      gateway = await lifeline("gateway", "gateway", engine);
    } catch (error) {
      await Promise.all(workerProcesses.map((p) => p.kill()));
      throw error;
    }
    return {
      url: gateway.url,
      api: "lifeline",
      processes: [measured("gateway", gateway), ...workerProcesses.map((p, i) => measured(names[i]!, p)), redis],
      stop: () => stopAll([gateway, ...workerProcesses]),
    };
  }
  const node = await lifeline("start", "node", { LIFELINE_ENGINE: "sqlite", LIFELINE_DATA_DIR: join(options.dir, "data") });
  return { url: node.url, api: "lifeline", processes: [measured("node", node)], stop: () => stopAll([node]) };
}
