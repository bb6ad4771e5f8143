// The inspect page: one answer's timeline (GET /v1/generations/:id/timeline), replayable up to
// any entry. Follows an open answer by asking again every second while it runs.

import { routes } from "/client.js";
import { keyForm, keyHeaders, refusalOf } from "./api-key.js";

/**
 * @typedef {import("../../projections/timeline.ts").Timeline} Timeline the body of GET /v1/generations/:id/timeline
 * @typedef {{ error?: { code?: string, message?: string } }} ErrorBody what the page reads of a refusal (it may come from a proxy, not Lifeline)
 */

const REFRESH_MS = 1000;
/** @type {ReadonlySet<Timeline["status"]>} */
const OPEN = new Set(["queued", "running"]);

const ui = {
  lookup: /** @type {HTMLFormElement} */ (document.getElementById("lookup")),
  generation: /** @type {HTMLInputElement} */ (document.getElementById("generation")),
  problem: /** @type {HTMLElement} */ (document.getElementById("problem")),
  timeline: /** @type {HTMLElement} */ (document.getElementById("timeline")),
  until: /** @type {HTMLInputElement} */ (document.getElementById("until")),
  untilValue: /** @type {HTMLOutputElement} */ (document.getElementById("until-value")),
  latest: /** @type {HTMLButtonElement} */ (document.getElementById("latest")),
  calls: /** @type {HTMLTableSectionElement} */ (document.querySelector("#calls tbody")),
  steps: /** @type {HTMLTableSectionElement} */ (document.querySelector("#steps tbody")),
  text: /** @type {HTMLElement} */ (document.getElementById("text")),
};

/** What is shown: the generation, the newest entry known, and the entry replayed up to (`undefined`: the newest). */
const state = { id: "", lastOffset: 0, until: /** @type {number | undefined} */ (undefined), timer: 0, asking: 0 };

ui.lookup.addEventListener("submit", (event) => {
  event.preventDefault();
  const id = ui.generation.value.trim();
  history.replaceState(null, "", routes.inspectPage(id));
  void show(id);
});
ui.until.addEventListener("input", () => {
  const value = Number(ui.until.value);
  state.until = value >= state.lastOffset ? undefined : value;
  void load();
});
ui.latest.addEventListener("click", () => {
  state.until = undefined;
  void load();
});

// With keys configured, the timeline is read with the user's key, asked for once per tab.
const keys = keyForm(() => {
  if (state.id !== "") void load();
});

const initial = new URLSearchParams(location.search).get("id");
if (initial) {
  ui.generation.value = initial;
  void show(initial);
}

/** @param {string} id */
async function show(id) {
  state.id = id;
  state.until = undefined;
  state.lastOffset = 0;
  await load();
}

/** Asks for the timeline as it stands (or up to `state.until`) and shows it; only the newest answer is shown. */
async function load() {
  clearTimeout(state.timer);
  const asked = ++state.asking;
  let res;
  try {
    res = await fetch(routes.timeline(state.id, { until: state.until }), { cache: "no-store", headers: keyHeaders() });
  } catch {
    res = undefined;
  }
  /** @type {unknown} */
  const body = await res?.json().catch(() => undefined);
  if (asked !== state.asking) return; // a newer request took over, timers included
  if (!res || res.status >= 500) {
    // Down or restarting (503 while the engine is away): try again, as for a cut connection.
    problem("The server does not answer; trying again.");
    state.timer = setTimeout(() => void load(), REFRESH_MS);
    return;
  }
  if (!res.ok) {
    const error = /** @type {ErrorBody | undefined} */ (body)?.error;
    // Asked for a key, or the key may not read: the form says why, and a new key loads again.
    if ((res.status === 401 || res.status === 403) && refusalOf(error?.code)) keys.ask(error?.code);
    problem(error?.message ?? `The server answered ${res.status}.`);
    ui.timeline.hidden = true;
    return;
  }
  const timeline = /** @type {Timeline} */ (body);
  problem("");
  render(timeline);
  // While the answer is open and the newest entry is shown, follow it.
  if (state.until === undefined && OPEN.has(timeline.status)) state.timer = setTimeout(() => void load(), REFRESH_MS);
}

/** @param {string} message */
function problem(message) {
  ui.problem.textContent = message;
  ui.problem.hidden = message === "";
}

/** @param {Timeline} t */
function render(t) {
  if (state.until === undefined) state.lastOffset = t.lastOffset;
  ui.timeline.hidden = false;
  const status = /** @type {HTMLElement} */ (document.getElementById("status"));
  status.textContent = t.status;
  status.dataset.status = t.status;
  setText("model", t.requestedModel);
  setText("entries", state.until === undefined ? String(t.lastOffset) : `${t.lastOffset} of ${state.lastOffset}`);
  setText("duration", t.durationMs === undefined ? "still open" : `${(t.durationMs / 1000).toFixed(2)} s`);
  setText("calls-count", String(t.attempts.length));
  setText("retries", String(t.retries));
  setText("takeovers", String(t.takeovers));
  setText("rewinds", String(t.rewinds));
  ui.until.max = String(state.lastOffset);
  ui.until.value = String(t.lastOffset);
  ui.untilValue.textContent = String(t.lastOffset);
  ui.latest.disabled = state.until === undefined;

  ui.calls.replaceChildren(
    ...t.attempts.map((a) => {
      const ended = a.error ? `${a.endedBy} (${a.error.code}: ${a.error.message})` : a.endedBy;
      const first = a.firstDeltaMs === undefined ? "—" : `${a.firstDeltaMs} ms`;
      const row = tableRow(
        [String(a.index), String(a.fence), a.worker, a.model, `${a.continuedFrom} chars`, first, `${a.deltas} (+${a.chars} chars)`, ended],
        [0, 1, 4, 5, 6],
      );
      row.dataset.endedBy = a.endedBy;
      return row;
    }),
  );
  const start = Date.parse(t.createdAt);
  ui.steps.replaceChildren(
    ...t.steps.map((s) => {
      const entries = s.fromOffset === s.toOffset ? String(s.fromOffset) : `${s.fromOffset}–${s.toOffset}`;
      const after = `+${((Date.parse(s.at) - start) / 1000).toFixed(3)} s`;
      const row = tableRow([entries, after, String(s.fence), s.type, s.summary], [0, 1, 2]);
      row.dataset.type = s.type;
      return row;
    }),
  );
  ui.text.textContent = t.text;
  setText("text-length", `(${t.text.length} characters)`);
}

/**
 * @param {string[]} cells
 * @param {number[]} numeric the columns that hold numbers
 */
function tableRow(cells, numeric) {
  const row = document.createElement("tr");
  for (const [i, text] of cells.entries()) {
    const cell = document.createElement("td");
    cell.textContent = text;
    if (numeric.includes(i)) cell.className = "num";
    row.append(cell);
  }
  return row;
}

/**
 * @param {string} id
 * @param {string} text
 */
function setText(id, text) {
  const element = document.getElementById(id);
  if (element) element.textContent = text;
}
