import { createServer, type Server } from "node:http";
import type { Metrics } from "./metrics.ts";

/** A process without a gateway (`lifeline worker`) serving its metrics for Prometheus to scrape. */
export interface MetricsServer {
  /** `http://host:port`; the metrics are at `/metrics`. */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Serves `GET /metrics` (Prometheus text) and `GET /healthz` on `host:port`, nothing else. A
 * worker has no HTTP API, so this is how its counters (takeovers, breakers, repairs) are seen.
 * There is no key check: bind it to an address only the scraper reaches.
 */
export async function serveMetrics(metrics: Metrics, host: string, port: number): Promise<MetricsServer> {
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? "").split("?")[0];
    if (request.method !== "GET" && request.method !== "HEAD") {
      response.writeHead(405, { allow: "GET, HEAD" }).end();
    } else if (path === "/metrics") {
      metrics.registry.metrics().then(
        (text) => response.writeHead(200, { "content-type": metrics.registry.contentType }).end(text),
        (error: Error) => response.writeHead(500, { "content-type": "text/plain" }).end(error.message),
      );
    } else if (path === "/healthz") {
      response.writeHead(200, { "content-type": "application/json" }).end('{"status":"ok"}');
    } else {
      response.writeHead(404, { "content-type": "text/plain" }).end("not found: this port serves /metrics and /healthz\n");
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address();
  const actual = typeof address === "object" && address ? address.port : port;
  return {
    url: `http://${host.includes(":") ? `[${host}]` : host}:${actual}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
