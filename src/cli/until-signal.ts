/** How long a process that hit a fatal error waits for its graceful stop before it exits anyway. */
const FATAL_STOP_MS = 10_000;

export interface RunningProcess {
  /** Ends the run for a fatal reason: says why on stderr, stops, exits 1. */
  fail(error: Error): void;
}

/**
 * Keeps the process alive until SIGTERM or SIGINT, however long it sits idle (a claim parked on an
 * engine's in-process wakeup holds no handle of its own), then runs `stop` and exits 0, or 1 if the
 * stop fails. A second signal exits 130 at once.
 */
export function runUntilSignal(name: string, stop: () => Promise<void>): RunningProcess {
  // Never cleared: the process ends by process.exit once stopped.
  setInterval(() => undefined, 1 << 30);
  let ending = false;
  const end = (code: number, bound?: number): void => {
    if (ending) return;
    ending = true;
    process.exitCode = code;
    if (bound !== undefined) setTimeout(() => process.exit(code), bound).unref();
    void stop().then(
      () => process.exit(code),
      (error: unknown) => {
        process.stderr.write(`lifeline: ${name} did not stop cleanly: ${(error as Error).message}\n`);
        process.exit(1);
      },
    );
  };
  let signals = 0;
  const onSignal = (): void => {
    if (++signals > 1) process.exit(130);
    end(0);
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  return {
    fail: (error) => {
      process.stderr.write(`lifeline: ${name} stops: ${error.message}\n`);
      end(1, FATAL_STOP_MS);
    },
  };
}
