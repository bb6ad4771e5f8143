import type { FastifyInstance } from "fastify";
import { LifelineError } from "../../core/errors.ts";
import { GENERATION_ID } from "../../core/generation-id.ts";
import { ROUTE_PATHS } from "../../core/routes.ts";
import type { ModelCounts, ReadModelStore, SearchQuery, WorkerActivity } from "../../projections/store/port.ts";
import type { Summary } from "../../projections/summary.ts";
import { unavailableGuard } from "../guarded-engine.ts";

/** A live answer as `/v1/ops/overview` shows it. */
export type LiveSummary = Summary & { readonly ageMs: number; readonly lastEntryAt: string; readonly stuck: boolean };

/** The body of `GET /v1/ops/overview`. */
export interface Overview {
  readonly at: string;
  readonly live: LiveSummary[];
  readonly failuresLastHour: { code: string; count: number }[];
  readonly models: ModelCounts[];
  readonly workers: WorkerActivity[];
}

const STATUSES: readonly Summary["status"][] = ["queued", "running", "completed", "failed", "cancelled"];
const PARAMETERS = new Set(["id", "status", "model", "since", "until", "limit", "before"]);
const HOUR_MS = 3_600_000;
/** Rows a search page holds unless `limit` says otherwise, and at most. */
export const SEARCH_LIMIT = { default: 50, max: 200 } as const;

/**
 * `GET /v1/ops/overview` and `GET /v1/ops/generations`: the read models across answers (decision
 * 037) for `/ops`. Both ask for `admin` once keys exist (route-access.ts): they show every tenant's
 * answers. `beforeRead` lets the gateway start its projector at the first read.
 */
export function opsAnswerRoutes(
  app: FastifyInstance,
  options: {
    readonly store: ReadModelStore;
    readonly stuckAfterMs: number;
    readonly beforeRead?: () => void;
    /** A later last entry than the row keeps, if the projector saw one (tokens are not folded into rows). */
    readonly lastEntryAt?: (id: string, kept: string) => string;
  },
): void {
  const guard = unavailableGuard(`The ${options.store.kind} read-model store`);
  const store = {
    live: guard(() => options.store.live()),
    failuresSince: guard((since: string) => options.store.failuresSince(since)),
    models: guard(() => options.store.models()),
    workers: guard(() => options.store.workers()),
    search: guard((query: SearchQuery) => options.store.search(query)),
  };

  app.get(ROUTE_PATHS.opsOverview, async (): Promise<Overview> => {
    options.beforeRead?.();
    const now = Date.now();
    const [live, failuresLastHour, models, workers] = await Promise.all([
      store.live(),
      store.failuresSince(new Date(now - HOUR_MS).toISOString()),
      store.models(),
      store.workers(),
    ]);
    return {
      at: new Date(now).toISOString(),
      live: live.map(({ summary, lastEntryAt: kept }) => {
        const lastEntryAt = options.lastEntryAt?.(summary.id, kept) ?? kept;
        return {
          ...summary,
          ageMs: Math.max(0, now - Date.parse(summary.createdAt)),
          lastEntryAt,
          stuck: now - Date.parse(lastEntryAt) > options.stuckAfterMs,
        };
      }),
      failuresLastHour,
      models,
      workers,
    };
  });

  app.get<{ Querystring: Record<string, string | string[] | undefined> }>(
    ROUTE_PATHS.opsGenerations,
    async (request): Promise<{ generations: Summary[]; next?: string }> => {
      options.beforeRead?.();
      const query = searchQueryOf(request.query);
      const page = await store.search(query);
      const last = page.generations.at(-1);
      return { generations: page.generations, ...(page.more && last ? { next: cursorOf(last) } : {}) };
    },
  );
}

/**
 * The search's parameters, each checked: a wrong one is `invalid_request` naming it, never a
 * search that silently ignores it.
 */
export function searchQueryOf(raw: Readonly<Record<string, string | string[] | undefined>>): SearchQuery {
  const one = (name: string): string | undefined => {
    const value = raw[name];
    if (Array.isArray(value)) throw invalid(name, `${name} may be given once.`);
    return value === undefined || value === "" ? undefined : value;
  };
  for (const name of Object.keys(raw))
    if (!PARAMETERS.has(name)) throw invalid(name, `${name} is not a parameter of this search (${[...PARAMETERS].join(", ")}).`);
  const id = one("id");
  if (id !== undefined && !GENERATION_ID.test(id)) throw invalid("id", "id must be a generation id: gen_ and 26 of 0-9 and a-z.");
  const status = one("status");
  if (status !== undefined && !STATUSES.includes(status as Summary["status"]))
    throw invalid("status", `status must be one of ${STATUSES.join(", ")}.`);
  const model = one("model");
  if (model !== undefined && model.length > 200) throw invalid("model", "model must be at most 200 characters.");
  const since = timeOf("since", one("since"));
  const until = timeOf("until", one("until"));
  const limitText = one("limit");
  let limit: number = SEARCH_LIMIT.default;
  if (limitText !== undefined) {
    if (!/^\d{1,4}$/.test(limitText) || Number(limitText) < 1 || Number(limitText) > SEARCH_LIMIT.max)
      throw invalid("limit", `limit must be a whole number from 1 to ${SEARCH_LIMIT.max}.`);
    limit = Number(limitText);
  }
  const beforeText = one("before");
  const before = beforeText === undefined ? undefined : beforeOf(beforeText);
  return {
    limit,
    ...(id === undefined ? {} : { id }),
    ...(status === undefined ? {} : { status: status as Summary["status"] }),
    ...(model === undefined ? {} : { model }),
    ...(since === undefined ? {} : { since }),
    ...(until === undefined ? {} : { until }),
    ...(before === undefined ? {} : { before }),
  };
}

/** Where the next page starts: the last row's creation time and id, as one opaque word. */
export function cursorOf(last: Summary): string {
  return Buffer.from(JSON.stringify([last.createdAt, last.id])).toString("base64url");
}

function beforeOf(text: string): { createdAt: string; id: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(text, "base64url").toString("utf8"));
  } catch {
    parsed = undefined;
  }
  if (
    !Array.isArray(parsed) ||
    parsed.length !== 2 ||
    typeof parsed[0] !== "string" ||
    Number.isNaN(Date.parse(parsed[0])) ||
    typeof parsed[1] !== "string" ||
    !GENERATION_ID.test(parsed[1])
  )
    throw invalid("before", "before must be the `next` of a previous page, unchanged.");
  return { createdAt: new Date(parsed[0]).toISOString(), id: parsed[1] };
}

/** An ISO 8601 time with a date, as the logs write them (`2026-11-30T18:00:00.000Z`, or with an offset). */
function timeOf(name: string, text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const ms = /^\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:\d{2})?)?$/.test(text) ? Date.parse(text) : NaN;
  if (Number.isNaN(ms)) throw invalid(name, `${name} must be an ISO 8601 time such as 2026-11-30T18:00:00Z.`);
  return new Date(ms).toISOString();
}

function invalid(parameter: string, message: string): LifelineError {
  return new LifelineError("invalid_request", message, { parameter });
}
