import { pino, type Logger, type LevelWithSilent } from "pino";

export type { Logger };

/** Structured JSON lines on stdout; every line about a generation carries `generation` and `attempt`. */
export function createLogger(level: LevelWithSilent, name = "lifeline"): Logger {
  return pino({ name, level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime });
}
