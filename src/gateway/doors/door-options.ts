import type { Engine } from "../../engine/port.ts";
import type { Metrics } from "../../observability/metrics.ts";
import type { Owners } from "../auth/owners.ts";
import type { GenerationStarter } from "../start-generation.ts";
import type { LogTails } from "../log-tail.ts";

/** What every protocol front door (OpenAI, AI SDK, Durable Streams) is given by the gateway. */
export interface DoorOptions {
  readonly engine: Engine;
  /** Who may see which generation: every route that names one asks here first (decision 032). */
  readonly owners: Owners;
  /** Starts generations under the caller's tenant and limits (every door that starts one). */
  readonly starter: GenerationStarter;
  readonly metrics: Metrics;
  /** The gateway's shared tails, which every follow joins at the end of a log. */
  readonly tails: LogTails;
  /** Model names this deployment serves; the first is the default of a door whose requests name none. */
  readonly models: () => readonly string[];
  readonly heartbeatMs: number;
  /** Aborts when the gateway shuts down: open streams end so clients resume elsewhere. */
  readonly shutdown: AbortSignal;
}
