import type { FastifyInstance } from "fastify";
import { LifelineError } from "../../core/errors.ts";
import type { Engine } from "../../engine/port.ts";
import type { Metrics } from "../../observability/metrics.ts";

const READY_TIMEOUT_MS = 2000;

/** `/healthz` (the process lives), `/readyz` (the engine answers), `/metrics` (Prometheus). */
export function healthRoutes(app: FastifyInstance, options: { engine: Engine; metrics: Metrics }): void {
  app.get("/healthz", async () => ({ status: "ok" }));

  app.get("/readyz", async () => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("engine ping timed out")), READY_TIMEOUT_MS);
    });
    try {
      await Promise.race([options.engine.ping(), timeout]);
    } catch (error) {
      if (error instanceof LifelineError) throw error;
      throw new LifelineError("engine_unavailable", `The ${options.engine.kind} engine does not answer: ${(error as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
    return { status: "ready", engine: options.engine.kind };
  });

  app.get("/metrics", async (_request, reply) => {
    void reply.header("content-type", options.metrics.registry.contentType);
    return options.metrics.registry.metrics();
  });
}
