import type { FastifyInstance } from "fastify";
import { LifelineError } from "../../core/errors.ts";
import { ROUTE_PATHS } from "../../core/routes.ts";
import type { Engine } from "../../engine/port.ts";
import { pingWithin } from "../../engine/ping-within.ts";
import type { Metrics } from "../../observability/metrics.ts";

const READY_TIMEOUT_MS = 2000;

/** `/healthz` (the process lives), `/readyz` (the engine answers), `/metrics` (Prometheus). */
export function healthRoutes(app: FastifyInstance, options: { engine: Engine; metrics: Metrics }): void {
  app.get(ROUTE_PATHS.healthz, async () => ({ status: "ok" }));

  app.get(ROUTE_PATHS.readyz, async () => {
    try {
      await pingWithin(options.engine, READY_TIMEOUT_MS);
    } catch (error) {
      if (error instanceof LifelineError) throw error;
      throw new LifelineError("engine_unavailable", `The ${options.engine.kind} engine does not answer: ${(error as Error).message}`);
    }
    return { status: "ready", engine: options.engine.kind };
  });

  app.get(ROUTE_PATHS.metrics, async (_request, reply) => {
    void reply.header("content-type", options.metrics.registry.contentType);
    return options.metrics.registry.metrics();
  });
}
