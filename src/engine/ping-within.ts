import type { Engine } from "./port.ts";

/** `engine.ping()`, or an error once `timeoutMs` passes without an answer (a client that queues commands while down would wait on). */
export async function pingWithin(engine: Engine, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([engine.ping(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
