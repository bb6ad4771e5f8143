// The operations page (decision 041): live answers (stuck ones first and marked), workers and the
// leases they hold, breakers, failures of the last hour, and a search over answers that links
// each to its inspect page. Reads GET /v1/ops/overview and /v1/ops/workers every two seconds and
// /v1/ops/generations on demand; with keys configured it asks for a key with the `admin` scope.

import { routes } from "/client.js";
import { keyForm, keyHeaders, refusalOf } from "./api-key.js";

/**
 * @typedef {import("../../engine/workers/port.ts").WorkerStatus} WorkerStatus a worker's last report
 * @typedef {import("../../projections/summary.ts").Summary} Summary an answer as the read models keep it
 * @typedef {import("../../projections/store/port.ts").WorkerActivity} WorkerActivity a worker's part in the answers
 * @typedef {import("../../projections/store/port.ts").ModelCounts} ModelCounts the answers of one model on one route
 * @typedef {Summary & { ageMs: number, lastEntryAt: string, stuck: boolean }} LiveSummary an answer that has not ended
 * @typedef {{ at: string, live: LiveSummary[], failuresLastHour: { code: string, count: number }[], models: ModelCounts[], workers: WorkerActivity[] }} Overview
 *   the body of GET /v1/ops/overview (src/gateway/routes/ops-answers.ts; the page reads what it shows)
 * @typedef {{ generations: Summary[], next?: string }} SearchPage the body of GET /v1/ops/generations
 * @typedef {{ error?: { code?: string, message?: string } }} ErrorBody what the page reads of a refusal
 * @typedef {{ ok: true, body: unknown } | { ok: false, status: number, code?: string | undefined, message: string }} Answer
 */

const REFRESH_MS = 2000;
const SEARCH_LIMIT = 50;
/**
 * A worker reports every 2 s and its report stands 10 s: one not heard from for this long has
 * probably died, and its leases will be taken over once they expire.
 */
const LATE_REPORT_MS = 5000;

const ui = {
  problem: /** @type {HTMLElement} */ (document.getElementById("problem")),
  refreshed: /** @type {HTMLElement} */ (document.getElementById("refreshed")),
  live: /** @type {HTMLTableSectionElement} */ (document.querySelector("#live tbody")),
  liveCount: /** @type {HTMLElement} */ (document.getElementById("live-count")),
  workers: /** @type {HTMLTableSectionElement} */ (document.querySelector("#workers tbody")),
  workerCount: /** @type {HTMLElement} */ (document.getElementById("worker-count")),
  breakers: /** @type {HTMLTableSectionElement} */ (document.querySelector("#breakers tbody")),
  failures: /** @type {HTMLTableSectionElement} */ (document.querySelector("#failures tbody")),
  models: /** @type {HTMLTableSectionElement} */ (document.querySelector("#models tbody")),
  search: /** @type {HTMLFormElement} */ (document.getElementById("search")),
  results: /** @type {HTMLTableElement} */ (document.getElementById("results")),
  resultRows: /** @type {HTMLTableSectionElement} */ (document.querySelector("#results tbody")),
  noResults: /** @type {HTMLElement} */ (document.getElementById("no-results")),
  more: /** @type {HTMLButtonElement} */ (document.getElementById("more")),
  keyReason: /** @type {HTMLElement} */ (document.getElementById("key-reason")),
};

/** What is shown: the refresh timer, and the search asked for with where its next page starts. */
const state = {
  timer: 0,
  asking: 0,
  query: /** @type {URLSearchParams | undefined} */ (undefined),
  next: /** @type {string | undefined} */ (undefined),
};

// With keys configured, every read carries the user's key (an admin key), asked for once per tab.
const keys = keyForm(() => {
  void refresh();
  if (state.query) void search(false);
});

ui.search.addEventListener("submit", (event) => {
  event.preventDefault();
  state.query = queryOf(new FormData(ui.search));
  void search(false);
});
ui.more.addEventListener("click", () => void search(true));

void refresh();

/**
 * GETs `path` with the key; a refusal, a failure or a network error as a value.
 * @param {string} path
 * @returns {Promise<Answer>}
 */
async function get(path) {
  let res;
  try {
    res = await fetch(path, { cache: "no-store", headers: keyHeaders() });
  } catch {
    return { ok: false, status: 0, message: "The server does not answer; trying again." };
  }
  /** @type {unknown} */
  const body = await res.json().catch(() => undefined);
  if (res.ok) return { ok: true, body };
  const error = /** @type {ErrorBody | undefined} */ (body)?.error;
  return { ok: false, status: res.status, code: error?.code, message: error?.message ?? `The server answered ${res.status}.` };
}

/**
 * Shows the form for a key when `answer` is a refusal that asks for one; true then.
 * @param {Answer} answer
 */
function askedForKey(answer) {
  if (answer.ok || (answer.status !== 401 && answer.status !== 403) || !refusalOf(answer.code)) return false;
  keys.ask(answer.code);
  if (answer.code === "forbidden")
    ui.keyReason.textContent = "This API key may not see operations: it needs the admin scope. Enter another one.";
  problem(answer.message);
  return true;
}

/** Reads the overview and the workers' reports and shows them; again every two seconds. */
async function refresh() {
  clearTimeout(state.timer);
  const asked = ++state.asking;
  const [overview, workers] = await Promise.all([get(routes.opsOverview()), get(routes.opsWorkers())]);
  if (asked !== state.asking) return; // a newer refresh took over, timers included
  // Asked for a key: wait for it (the form's submit refreshes), rather than asking again and again.
  if (askedForKey(overview) || askedForKey(workers)) return;
  const failed = [overview, workers].find((a) => !a.ok);
  problem(failed && !failed.ok ? failed.message : "");
  const view = overview.ok ? /** @type {Overview} */ (overview.body) : undefined;
  const reports = workers.ok ? /** @type {{ workers: WorkerStatus[] }} */ (workers.body).workers : undefined;
  if (view) renderLive(view);
  if (view || reports) renderWorkers(view, reports);
  if (reports) renderBreakers(reports);
  if (view) renderFailures(view.failuresLastHour);
  if (view) renderModels(view.models);
  ui.refreshed.textContent = `as of ${new Date(view?.at ?? Date.now()).toLocaleTimeString()}`;
  state.timer = setTimeout(() => void refresh(), REFRESH_MS);
}

/** @param {Overview} view */
function renderLive(view) {
  const now = Date.parse(view.at);
  // Stuck answers first, then the oldest.
  const live = [...view.live].sort((a, b) => Number(b.stuck) - Number(a.stuck) || b.ageMs - a.ageMs);
  ui.liveCount.textContent = `(${live.length}${live.some((s) => s.stuck) ? `, ${live.filter((s) => s.stuck).length} stuck` : ""})`;
  ui.live.replaceChildren(
    ...live.map((s) => {
      const row = tableRow([
        answerLink(s.id),
        stateCell(s),
        s.model,
        s.worker ?? "—",
        duration(s.ageMs),
        `${duration(now - Date.parse(s.lastEntryAt))} ago`,
        number(s.attempts),
        number(s.retries),
        number(s.takeovers),
      ]);
      row.dataset.id = s.id;
      row.dataset.stuck = String(s.stuck);
      row.dataset.takeovers = String(s.takeovers);
      return row;
    }),
  );
  if (live.length === 0) ui.live.replaceChildren(emptyRow(9, "No answer is running or queued."));
}

/**
 * @param {LiveSummary} s
 * @returns {Node}
 */
function stateCell(s) {
  const cell = document.createElement("span");
  cell.textContent = s.status;
  if (s.stuck) {
    const flag = document.createElement("span");
    flag.className = "flag";
    flag.textContent = "stuck";
    flag.title = "No entry for longer than the idle timeout";
    cell.append(flag);
  }
  return cell;
}

/**
 * Every worker that reports now, and every worker the read models saw, with its leases and counts.
 * @param {Overview | undefined} view
 * @param {WorkerStatus[] | undefined} reports
 */
function renderWorkers(view, reports) {
  const now = Date.now();
  const activity = new Map((view?.workers ?? []).map((w) => [w.worker, w]));
  const reported = new Map((reports ?? []).map((r) => [r.worker, r]));
  // Reporting workers first (by name), then those only the logs remember.
  const names = [...reported.keys(), ...[...activity.keys()].filter((name) => !reported.has(name)).sort()];
  ui.workerCount.textContent = `(${reported.size} reporting)`;
  ui.workers.replaceChildren(
    ...names.map((name) => {
      const report = reported.get(name);
      const counts = activity.get(name);
      const leases = document.createElement("ul");
      leases.className = "leases";
      for (const lease of report?.leases ?? []) {
        const item = document.createElement("li");
        item.dataset.id = lease.id;
        item.append(answerLink(lease.id), ` · fence ${lease.fence} · ${duration(now - Date.parse(lease.since))}`);
        leases.append(item);
      }
      const silentMs = report ? now - Date.parse(report.seenAt) : 0;
      const late = silentMs > LATE_REPORT_MS;
      const row = tableRow([
        name,
        report ? `${duration(silentMs)} ago${late ? " (late: stopped or dead?)" : ""}` : "not reporting (stopped or dead)",
        report ? leases : "—",
        counts ? number(counts.attempts) : "—",
        counts ? number(counts.takeovers) : "—",
        counts ? number(counts.finished) : "—",
      ]);
      row.dataset.worker = name;
      row.dataset.reporting = String(report !== undefined);
      row.dataset.late = String(late);
      return row;
    }),
  );
  if (names.length === 0) ui.workers.replaceChildren(emptyRow(6, "No worker reports."));
}

/** @param {WorkerStatus[]} reports */
function renderBreakers(reports) {
  const rows = reports.flatMap((r) => r.breakers.map((b) => ({ ...b, worker: r.worker })));
  // Open ones first.
  rows.sort((a, b) => Number(b.state !== "closed") - Number(a.state !== "closed") || a.provider.localeCompare(b.provider));
  ui.breakers.replaceChildren(
    ...rows.map((b) => {
      const row = tableRow([b.provider, b.worker, b.state, b.openedAt ? new Date(b.openedAt).toLocaleTimeString() : "—"]);
      row.dataset.provider = b.provider;
      row.dataset.state = b.state;
      /** @type {HTMLElement} */ (row.children[2]).dataset.state = b.state;
      return row;
    }),
  );
  if (rows.length === 0) ui.breakers.replaceChildren(emptyRow(4, "No worker reports a breaker."));
}

/** @param {{ code: string, count: number }[]} failures */
function renderFailures(failures) {
  ui.failures.replaceChildren(
    ...failures.map((f) => {
      const row = tableRow([f.code, number(f.count)]);
      row.dataset.code = f.code;
      return row;
    }),
  );
  if (failures.length === 0) ui.failures.replaceChildren(emptyRow(2, "No answer failed in the last hour."));
}

/** @param {ModelCounts[]} models */
function renderModels(models) {
  ui.models.replaceChildren(
    ...models.map((m) => {
      const row = tableRow([
        m.model,
        m.provider,
        number(m.answers),
        number(m.completed),
        number(m.failed),
        number(m.retries),
        number(m.breakerOpens),
      ]);
      row.dataset.model = m.model;
      return row;
    }),
  );
  if (models.length === 0) ui.models.replaceChildren(emptyRow(7, "No answer yet."));
}

/**
 * The search's query from the form: only the fields given; times as ISO 8601.
 * @param {FormData} form
 */
function queryOf(form) {
  const query = new URLSearchParams();
  for (const name of ["id", "status", "model"]) {
    const value = String(form.get(name) ?? "").trim();
    if (value !== "") query.set(name, value);
  }
  for (const name of ["since", "until"]) {
    const value = String(form.get(name) ?? "");
    if (value !== "") query.set(name, new Date(value).toISOString());
  }
  query.set("limit", String(SEARCH_LIMIT));
  return query;
}

/**
 * Runs the search; `more` asks for the page after the last one shown.
 * @param {boolean} more
 */
async function search(more) {
  if (!state.query) return;
  const query = new URLSearchParams(state.query);
  if (more && state.next) query.set("before", state.next);
  const answer = await get(`${routes.opsGenerations()}?${query}`);
  if (askedForKey(answer)) return;
  if (!answer.ok) {
    problem(answer.message);
    return;
  }
  const page = /** @type {SearchPage} */ (answer.body);
  const rows = page.generations.map((s) => {
    const row = tableRow([
      answerLink(s.id),
      s.status,
      s.model,
      new Date(s.createdAt).toLocaleString(),
      s.totalMs === undefined ? "—" : duration(s.totalMs),
      number(s.attempts),
      number(s.takeovers),
      s.errorCode ?? "",
    ]);
    row.dataset.id = s.id;
    row.dataset.status = s.status;
    return row;
  });
  if (more) ui.resultRows.append(...rows);
  else ui.resultRows.replaceChildren(...rows);
  state.next = page.next;
  ui.results.hidden = ui.resultRows.children.length === 0;
  ui.noResults.hidden = ui.resultRows.children.length > 0;
  ui.more.hidden = page.next === undefined;
}

/** @param {string} message */
function problem(message) {
  ui.problem.textContent = message;
  ui.problem.hidden = message === "";
}

/**
 * A link to an answer's inspect page.
 * @param {string} id
 */
function answerLink(id) {
  const link = document.createElement("a");
  link.href = routes.inspectPage(id);
  link.textContent = id;
  return link;
}

/**
 * A table row; strings become text, nodes are put in as they are.
 * @param {(string | Node)[]} cells
 */
function tableRow(cells) {
  const row = document.createElement("tr");
  for (const content of cells) {
    const cell = document.createElement("td");
    cell.append(content);
    row.append(cell);
  }
  return row;
}

/**
 * @param {number} columns
 * @param {string} text
 */
function emptyRow(columns, text) {
  const row = document.createElement("tr");
  const cell = document.createElement("td");
  cell.colSpan = columns;
  cell.className = "muted";
  cell.textContent = text;
  row.append(cell);
  return row;
}

/** @param {number} n */
function number(n) {
  return n.toLocaleString("en");
}

/**
 * A duration as people read it: `850 ms`, `12 s`, `3 min 5 s`, `2 h 1 min`.
 * @param {number} ms
 */
function duration(ms) {
  const clamped = Math.max(0, ms);
  if (clamped < 1000) return `${Math.round(clamped)} ms`;
  const s = Math.floor(clamped / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}
