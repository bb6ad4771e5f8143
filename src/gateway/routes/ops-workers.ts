import type { FastifyInstance } from "fastify";
import { ROUTE_PATHS } from "../../core/routes.ts";
import type { WorkerStatus, WorkerStatusStore } from "../../engine/workers/port.ts";
import { unavailableGuard } from "../guarded-engine.ts";

/**
 * `GET /v1/ops/workers`: every worker's last status report (decision 041), for `/ops`; and `GET
 * /ops`, the page. The route asks for `admin` once keys exist (route-access.ts): workers run every
 * tenant's answers.
 */
export function opsWorkerRoutes(app: FastifyInstance, options: { readonly workers: WorkerStatusStore; readonly web: boolean }): void {
  // The store is the engine's (same folder, same Redis): when it does not answer, 503 engine_unavailable.
  const list = unavailableGuard(`The ${options.workers.kind} worker status store`)(() => options.workers.list());
  app.get(ROUTE_PATHS.opsWorkers, async (): Promise<{ workers: WorkerStatus[] }> => ({ workers: await list() }));
  // The page is a file beside the others; `/ops` is its address.
  if (options.web) app.get(ROUTE_PATHS.opsPage, (_request, reply) => reply.sendFile("ops.html"));
}
