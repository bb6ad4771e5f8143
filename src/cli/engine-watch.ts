import type { Engine } from "../engine/port.ts";
import { pingWithin } from "../engine/ping-within.ts";
import type { Logger } from "../observability/logger.ts";

/** The engine has not answered for the whole retry budget: the process cannot do its work. */
export class EngineUnreachableError extends Error {
  constructor(
    readonly engine: string,
    readonly budgetMs: number,
    cause: unknown,
  ) {
    super(`the ${engine} engine has not answered for ${budgetMs} ms: ${(cause as Error).message ?? String(cause)}`, { cause });
    this.name = "EngineUnreachableError";
  }
}

export interface EngineWatchOptions {
  readonly engine: Engine;
  readonly logger: Logger;
  /** How long the engine may stay silent before the process gives up. */
  readonly budgetMs: number;
  /** Called once, when the budget is spent while running. */
  readonly onUnreachable: (error: EngineUnreachableError) => void;
}

/** Longest single ping, and the pause between two. */
const PING_EVERY_MS = 2000;

function pingTimeout(budgetMs: number): number {
  return Math.max(100, Math.min(PING_EVERY_MS, budgetMs / 2));
}

/**
 * Waits until the engine answers, for at most `budgetMs`; throws `EngineUnreachableError` after.
 * Run before a process takes work, so that a wrong address fails the start instead of retrying forever.
 */
export async function awaitEngine(engine: Engine, budgetMs: number, logger: Logger): Promise<void> {
  const deadline = Date.now() + budgetMs;
  let warned = false;
  for (;;) {
    try {
      await pingWithin(engine, pingTimeout(budgetMs));
      if (warned) logger.info({ engine: engine.kind }, "the engine answers");
      return;
    } catch (error) {
      if (Date.now() >= deadline) throw new EngineUnreachableError(engine.kind, budgetMs, error);
      if (!warned) logger.warn({ engine: engine.kind, err: (error as Error).message }, "the engine does not answer yet; retrying");
      warned = true;
      await new Promise((resolve) => setTimeout(resolve, Math.min(500, Math.max(0, deadline - Date.now()))));
    }
  }
}

/**
 * Pings the engine while the process runs. Failures within the budget are a failover or a restart
 * the engine's client rides out; a budget of failures in a row is fatal, reported once.
 */
export function watchEngine(options: EngineWatchOptions): { readonly failing: boolean; stop(): void } {
  const { engine, logger, budgetMs } = options;
  let failingSince: number | undefined;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;

  const check = async (): Promise<void> => {
    try {
      await pingWithin(engine, pingTimeout(budgetMs));
      if (failingSince !== undefined) logger.info({ engine: engine.kind }, "the engine answers again");
      failingSince = undefined;
    } catch (error) {
      const now = Date.now();
      if (failingSince === undefined) {
        failingSince = now;
        logger.warn({ engine: engine.kind, err: (error as Error).message }, "the engine does not answer");
      }
      if (now - failingSince >= budgetMs) {
        stopped = true;
        options.onUnreachable(new EngineUnreachableError(engine.kind, budgetMs, error));
        return;
      }
    }
    if (!stopped) schedule();
  };
  const schedule = (): void => {
    // Not what keeps the process alive: that is the process's own business.
    timer = setTimeout(() => void check(), Math.min(PING_EVERY_MS, budgetMs / 4)).unref();
  };
  schedule();
  return {
    /** The last ping failed: the engine does not answer now. */
    get failing() {
      return failingSince !== undefined;
    },
    stop: () => {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
