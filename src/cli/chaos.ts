import { parseArgs } from "node:util";
import { TRANSPORT_NAMES } from "../client/transport.ts";
import type { TransportName } from "../client/index.ts";
import type { ChaosOptions } from "../chaos/run-chaos.ts";

export const CHAOS_USAGE = `Usage: lifeline chaos [options]

Proves the promise on this machine: starts a gateway and workers as separate processes on a
temporary sqlite engine, starts answers, follows each through a proxy that cuts connections,
and SIGKILLs workers (and the gateway once) while they stream: each kill is aimed at a worker
that the log shows writing an answer at that moment, so each one forces a takeover. Then checks
that every answer ended with exactly the text an uninterrupted run produces, every offset once
and in order, and reports how many kills hit an answer in flight. Exits 0 when all are exact,
1 otherwise.

  --answers <n>             answers to run (default 30, 1–500)
  --workers <n>             worker processes (default 3, 1–16)
  --kill-every-ms <ms>      this often, SIGKILL a worker that is mid-answer (default 1500, 200–60000)
  --tokens <n>              tokens per answer (default 150, 1–4000)
  --tokens-per-second <n>   the sim's pace per answer (default 50, 1–10000)
  --transports <list>       followed over these in turn (default sse,websocket,long-poll)
  --seed <n>                makes the run repeatable (default: random, printed)
  --no-gateway-kill         leave the gateway alone
  --deadline-s <s>          give up after this long (default 180, 10–3600)
  --keep                    keep the data directory, to replay the answers afterwards
  --json                    the report as JSON`;

/** A mistake in the command line: printed with the usage, exit 2. */
export class ChaosUsageError extends Error {}

/** `lifeline chaos` flags to options, every one checked. */
export function parseChaosFlags(args: readonly string[]): { options: ChaosOptions; json: boolean } {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...args],
      strict: true,
      allowPositionals: false,
      options: {
        answers: { type: "string" },
        workers: { type: "string" },
        "kill-every-ms": { type: "string" },
        tokens: { type: "string" },
        "tokens-per-second": { type: "string" },
        transports: { type: "string" },
        seed: { type: "string" },
        "no-gateway-kill": { type: "boolean" },
        "deadline-s": { type: "string" },
        keep: { type: "boolean" },
        json: { type: "boolean" },
      },
    }));
  } catch (error) {
    throw new ChaosUsageError((error as Error).message);
  }
  const problems: string[] = [];
  const int = (flag: string, value: string | undefined, fallback: number, min: number, max: number): number => {
    if (value === undefined) return fallback;
    const n = /^\d{1,9}$/.test(value) ? Number(value) : NaN;
    if (!(n >= min && n <= max)) problems.push(`--${flag} must be a whole number from ${min} to ${max}, not "${value.slice(0, 32)}"`);
    return n;
  };
  const transports = (values.transports ?? TRANSPORT_NAMES.join(",")).split(",").map((t) => t.trim());
  for (const t of transports)
    if (!(TRANSPORT_NAMES as readonly string[]).includes(t))
      problems.push(`--transports: "${t.slice(0, 32)}" is not one of ${TRANSPORT_NAMES.join(", ")}`);
  const options: ChaosOptions = {
    answers: int("answers", values.answers, 30, 1, 500),
    workers: int("workers", values.workers, 3, 1, 16),
    killEveryMs: int("kill-every-ms", values["kill-every-ms"], 1500, 200, 60_000),
    tokens: int("tokens", values.tokens, 150, 1, 4000),
    tokensPerSecond: int("tokens-per-second", values["tokens-per-second"], 50, 1, 10_000),
    seed: int("seed", values.seed, Math.floor(Math.random() * 1_000_000_000), 0, 2 ** 31 - 1),
    transports: [...new Set(transports)] as TransportName[],
    killGateway: !values["no-gateway-kill"],
    deadlineMs: int("deadline-s", values["deadline-s"], 180, 10, 3600) * 1000,
    keep: values.keep ?? false,
  };
  if (problems.length > 0) throw new ChaosUsageError(problems.join("\n"));
  return { options, json: values.json ?? false };
}
