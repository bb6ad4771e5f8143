/**
 * Every path of the HTTP API in one place: the templates the gateway registers and the builders
 * its callers use (the client SDK, the pages through `/client.js`, the chaos tool, the tests), so
 * a path cannot differ between the server and a client. Nothing here does I/O.
 */

/** The path of each route as the gateway registers it; `:id` is a generation id (fastify's syntax). */
export const ROUTE_PATHS = {
  /** `GET`: 200 while the process lives. */
  healthz: "/healthz",
  /** `GET`: 200 when the engine answers. */
  readyz: "/readyz",
  /** `GET`: Prometheus text. */
  metrics: "/metrics",
  /** `POST`: starts a generation. */
  generations: "/v1/generations",
  /** `GET`: the generation's state folded from its log. */
  generation: "/v1/generations/:id",
  /** `GET`: the log replayed into calls and steps, `?until=<offset>`. */
  timeline: "/v1/generations/:id/timeline",
  /** `GET`: the log as Server-Sent Events, `?from=<cursor>` or `Last-Event-ID`. */
  events: "/v1/generations/:id/events",
  /** `GET`: the log over long-poll, `?from=<cursor>&wait_ms=<ms>`. */
  poll: "/v1/generations/:id/poll",
  /** `POST`: cancels the generation. */
  cancel: "/v1/generations/:id/cancel",
  /** `POST`: a new read token for a browser to follow the generation with (a server with a key asks). */
  token: "/v1/generations/:id/token",
  /** `GET` with an upgrade: the WebSocket protocol of `core/wire.ts`. */
  websocket: "/v1/ws",
  /** `GET`: the client SDK as one browser ES module. */
  clientBundle: "/client.js",
  /** The chat page. */
  chatPage: "/",
  /** The inspect page, `?id=<generation>`. */
  inspectPage: "/inspect.html",
  /** `GET`: every worker's last status report: its leases and its breakers (admin). */
  opsWorkers: "/v1/ops/workers",
  /** `GET`: live answers (age, last entry, stuck), failures of the last hour, counts per model and per worker (admin). */
  opsOverview: "/v1/ops/overview",
  /** `GET`: a search over answers by id, status, model and time, newest first, paged (admin). */
  opsGenerations: "/v1/ops/generations",
  /** The operations page: live answers, stuck ones, workers, breakers, failures, search. */
  opsPage: "/ops",
} as const;

export type RouteName = keyof typeof ROUTE_PATHS;

/** A query parameter's value; `undefined` leaves it out. */
type QueryValue = string | number | undefined;

/** The template with `:id` replaced by the id, percent-encoded: an id can never reach another route. */
function withId(template: string, id: string): string {
  return template.replace(":id", encodeURIComponent(id));
}

/** The path with the query parameters that have a value, in the order given. */
function withQuery(path: string, query: Readonly<Record<string, QueryValue>>): string {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) if (value !== undefined) params.set(name, String(value));
  const search = params.toString();
  return search === "" ? path : `${path}?${search}`;
}

/**
 * The paths to call, ids percent-encoded and query parameters written as the gateway reads them.
 * Relative to the gateway's origin: prefix the base URL (`${baseUrl}${routes.events(id)}`).
 */
export const routes = Object.freeze({
  healthz: (): string => ROUTE_PATHS.healthz,
  readyz: (): string => ROUTE_PATHS.readyz,
  metrics: (): string => ROUTE_PATHS.metrics,
  generations: (): string => ROUTE_PATHS.generations,
  generation: (id: string): string => withId(ROUTE_PATHS.generation, id),
  /** `until`: the entry offset to replay up to; absent, the whole log. */
  timeline: (id: string, query: { readonly until?: number | undefined } = {}): string =>
    withQuery(withId(ROUTE_PATHS.timeline, id), { until: query.until }),
  /** `from`: the cursor to resume after (the `Last-Event-ID` header says the same); `token`: a read token. */
  events: (id: string, query: { readonly from?: string | undefined; readonly token?: string | undefined } = {}): string =>
    withQuery(withId(ROUTE_PATHS.events, id), { from: query.from, token: query.token }),
  /** `from`: the cursor to continue after; `waitMs`: how long the gateway may hold the request; `token`: a read token. */
  poll: (
    id: string,
    query: { readonly from?: string | undefined; readonly waitMs?: number | undefined; readonly token?: string | undefined } = {},
  ): string => withQuery(withId(ROUTE_PATHS.poll, id), { from: query.from, wait_ms: query.waitMs, token: query.token }),
  cancel: (id: string): string => withId(ROUTE_PATHS.cancel, id),
  token: (id: string): string => withId(ROUTE_PATHS.token, id),
  websocket: (): string => ROUTE_PATHS.websocket,
  clientBundle: (): string => ROUTE_PATHS.clientBundle,
  chatPage: (): string => ROUTE_PATHS.chatPage,
  /** The inspect page showing one generation's timeline. */
  inspectPage: (id: string): string => withQuery(ROUTE_PATHS.inspectPage, { id }),
  opsWorkers: (): string => ROUTE_PATHS.opsWorkers,
  opsOverview: (): string => ROUTE_PATHS.opsOverview,
  opsGenerations: (): string => ROUTE_PATHS.opsGenerations,
  opsPage: (): string => ROUTE_PATHS.opsPage,
});
