// The Lifeline chat page: a conversation whose answers survive reloads, cut connections and
// server restarts. The conversation lives in localStorage; an answer in progress is rebuilt from
// its log (DESIGN §3) and followed over Server-Sent Events until its terminal entry.

const STORAGE_KEY = "lifeline.chat.v1";
const MODEL = "sim";
const ENTRY_TYPES = ["created", "started", "delta", "retrying", "rewind", "completed", "failed", "cancelled"];
const TERMINAL_TYPES = new Set(["completed", "failed", "cancelled"]);
/** Attempts at POSTing a generation while the server cannot be reached; the Idempotency-Key makes them safe. */
const CREATE_ATTEMPTS = 6;
const MAX_RETRY_DELAY_MS = 8000;
/** Rebuilds after an entry that does not follow; past this the log cannot be followed and the answer fails visibly. */
const MAX_REBUILDS = 3;

const CONNECTION_LABELS = {
  idle: "Idle",
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  resumed: "Resumed",
};

const ui = {
  chat: byId("chat"),
  messages: byId("messages"),
  empty: byId("empty"),
  notice: byId("notice"),
  connection: byId("connection"),
  form: /** @type {HTMLFormElement} */ (byId("composer")),
  prompt: /** @type {HTMLTextAreaElement} */ (byId("prompt")),
  send: /** @type {HTMLButtonElement} */ (byId("send")),
  stop: /** @type {HTMLButtonElement} */ (byId("stop")),
  newChat: /** @type {HTMLButtonElement} */ (byId("new-chat")),
};

/**
 * @typedef {{ role: "user", content: string }} UserTurn
 * @typedef {{ role: "assistant", generation: string | null, requestKey: string,
 *   status: "streaming" | "completed" | "failed" | "cancelled", text: string, lastOffset: number,
 *   error?: string, note?: string }} AnswerTurn
 * @typedef {UserTurn | AnswerTurn} Turn
 */

/** @type {{ turns: Turn[] }} */
let conversation = loadConversation();
/** Streams that follow answers in progress, by turn. */
const streams = new Map();
let stopping = false;

/** The answer's text as a fold over its log: a delta appends, a rewind cuts back to the text as of `toOffset`. */
class TextFold {
  text = "";
  lastOffset = 0;
  /** lengthAfter[offset] = the text's length right after that entry. */
  #lengthAfter = [0];

  /** Applies the next entry; false when it cannot (a gap, or a rewind to an offset it never saw). */
  apply(entry) {
    if (entry.offset !== this.lastOffset + 1) return false;
    if (entry.type === "delta" && typeof entry.text === "string") {
      this.text += entry.text;
    } else if (entry.type === "rewind") {
      const length = this.#lengthAfter[entry.toOffset];
      if (length === undefined) return false;
      this.text = this.text.slice(0, length);
    }
    this.lastOffset = entry.offset;
    this.#lengthAfter[entry.offset] = this.text.length;
    return true;
  }

  reset() {
    this.text = "";
    this.lastOffset = 0;
    this.#lengthAfter = [0];
  }
}

/**
 * Follows one answer over `GET /v1/generations/:id/events` until its terminal entry. It always
 * starts from offset 0, so the text is rebuilt exactly, and applies each offset once.
 */
class AnswerStream {
  #fold = new TextFold();
  /** @type {EventSource | undefined} */
  #source;
  #cursor = "0";
  #resumed;
  #failures = 0;
  #rebuilds = 0;
  #retryTimer = 0;
  #closed = false;

  /** @param {AnswerTurn} answer @param {boolean} resumed whether the answer was already under way (a page reload) */
  constructor(answer, resumed) {
    this.answer = answer;
    this.#resumed = resumed;
  }

  start() {
    this.#open("0", "connecting");
  }

  close() {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    this.#source?.close();
  }

  #open(from, state) {
    if (this.#closed) return;
    setConnection(state);
    const url = `/v1/generations/${encodeURIComponent(this.answer.generation)}/events?from=${encodeURIComponent(from)}`;
    const source = new EventSource(url);
    this.#source = source;
    source.onopen = () => {
      if (this.#closed || source !== this.#source) return;
      this.#failures = 0;
      setConnection(this.#resumed ? "resumed" : "live");
    };
    source.onerror = () => {
      if (this.#closed || source !== this.#source) return;
      // CONNECTING: the browser reconnects by itself and sends Last-Event-ID.
      this.#resumed = true;
      setConnection("reconnecting");
      // CLOSED: the browser gave up (an HTTP error such as a 503 while a server stops); retry ourselves.
      if (source.readyState === EventSource.CLOSED) this.#scheduleRecovery();
    };
    for (const type of ENTRY_TYPES) source.addEventListener(type, (event) => this.#onEntry(event));
    source.addEventListener("reset", (event) => this.#onReset(event));
  }

  #scheduleRecovery() {
    this.#source?.close();
    const delay = Math.min(1000 * 2 ** this.#failures, MAX_RETRY_DELAY_MS);
    this.#failures += 1;
    this.#retryTimer = setTimeout(() => void this.#recover(), delay);
  }

  async #recover() {
    try {
      const res = await fetch(`/v1/generations/${encodeURIComponent(this.answer.generation)}`);
      // A missing generation will not come back: say so rather than retry forever.
      if (res.status === 404) return this.#finish("failed", "The server no longer knows this answer.");
    } catch {
      // The server is still unreachable; the EventSource below retries by itself.
    }
    this.#open(this.#cursor, "reconnecting");
  }

  /** @param {MessageEvent} event */
  #onEntry(event) {
    if (this.#closed || event.target !== this.#source) return;
    let entry;
    try {
      entry = JSON.parse(event.data);
    } catch {
      return this.#finish("failed", "The server sent an entry this page cannot read.");
    }
    if (typeof entry.offset !== "number" || entry.offset <= this.#fold.lastOffset) return; // seen already
    if (!this.#fold.apply(entry)) return this.#rebuild();
    this.#cursor = event.lastEventId || String(entry.offset);
    const answer = this.answer;
    answer.text = this.#fold.text;
    answer.lastOffset = this.#fold.lastOffset;
    if (entry.type === "retrying") answer.note = `The model failed (${entry.error?.message ?? "unknown error"}); retrying…`;
    else if (entry.type === "started" && entry.attempt > 1) answer.note = "Continuing where the answer stopped…";
    else if (entry.type === "rewind") answer.note = "The answer restarted.";
    else if (entry.type === "delta") delete answer.note;
    if (TERMINAL_TYPES.has(entry.type)) {
      return this.#finish(entry.type, entry.type === "failed" ? (entry.error?.message ?? "The answer failed.") : undefined);
    }
    saveConversation();
    renderTurn(answer);
  }

  /** The server cannot vouch for what we saw: drop the text, it replays the log from offset 1. */
  #onReset(event) {
    if (this.#closed || event.target !== this.#source) return;
    this.#fold.reset();
    this.#cursor = event.lastEventId || "0";
    this.answer.text = "";
    this.answer.lastOffset = 0;
    saveConversation();
    renderTurn(this.answer);
  }

  /** An entry that does not follow the last one: start over from the beginning of the log. */
  #rebuild() {
    this.#source?.close();
    if (++this.#rebuilds > MAX_REBUILDS) return this.#finish("failed", "The answer's log has a gap this page cannot repair.");
    this.#fold.reset();
    this.#cursor = "0";
    this.#open("0", "reconnecting");
  }

  #finish(status, error) {
    this.close();
    streams.delete(this.answer);
    finishAnswer(this.answer, status, error);
  }
}

// ---- conversation state ----

function loadConversation() {
  try {
    const stored = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? "null");
    if (stored && Array.isArray(stored.turns) && stored.turns.every(isTurn)) return stored;
  } catch {
    // Unreadable state: start a new conversation.
  }
  return { turns: [] };
}

function isTurn(turn) {
  if (!turn || typeof turn !== "object") return false;
  if (turn.role === "user") return typeof turn.content === "string";
  return turn.role === "assistant" && typeof turn.text === "string" && typeof turn.requestKey === "string";
}

function saveConversation() {
  try {
    localStorage.setItem(STORAGE_KEY, JSON.stringify(conversation));
  } catch {
    showNotice("This conversation could not be saved in the browser; a reload will lose it.");
  }
}

/** The messages a model sees before `turnIndex`: every user message and every answer that has text. */
function messagesBefore(turnIndex) {
  const messages = [];
  for (const turn of conversation.turns.slice(0, turnIndex)) {
    if (turn.role === "user") messages.push({ role: "user", content: turn.content });
    else if (turn.text !== "") messages.push({ role: "assistant", content: turn.text });
  }
  return messages;
}

function activeAnswer() {
  return conversation.turns.find((turn) => turn.role === "assistant" && turn.status === "streaming");
}

// ---- actions ----

async function sendMessage(content) {
  const answer = { role: "assistant", generation: null, requestKey: newRequestKey(), status: "streaming", text: "", lastOffset: 0 };
  conversation.turns.push({ role: "user", content }, answer);
  saveConversation();
  renderAll();
  await createGeneration(answer);
}

/** POSTs the answer's generation; retried with the same Idempotency-Key, so it is created once. */
async function createGeneration(answer) {
  const messages = messagesBefore(conversation.turns.indexOf(answer));
  const body = JSON.stringify({ model: MODEL, messages });
  setConnection("connecting");
  for (let attempt = 1; ; attempt++) {
    let res;
    try {
      res = await fetch("/v1/generations", {
        method: "POST",
        headers: { "content-type": "application/json", "idempotency-key": answer.requestKey },
        body,
      });
    } catch {
      res = undefined;
    }
    if (res?.status === 201) {
      const created = await res.json();
      answer.generation = created.id;
      saveConversation();
      renderTurn(answer);
      return follow(answer, false);
    }
    const retriable = res === undefined || res.status >= 500;
    if (!retriable || attempt >= CREATE_ATTEMPTS) {
      const problem = res === undefined ? undefined : await res.json().catch(() => undefined);
      const message = problem?.error?.message ?? (res ? `The server answered ${res.status}.` : "The server cannot be reached.");
      return finishAnswer(answer, "failed", message);
    }
    setConnection("reconnecting");
    await sleep(Math.min(500 * 2 ** attempt, MAX_RETRY_DELAY_MS));
  }
}

function follow(answer, resumed) {
  const stream = new AnswerStream(answer, resumed);
  streams.set(answer, stream);
  stream.start();
  updateControls();
}

function finishAnswer(answer, status, error) {
  answer.status = status;
  delete answer.note;
  if (error === undefined) delete answer.error;
  else answer.error = error;
  saveConversation();
  renderTurn(answer);
  if (streams.size === 0) setConnection("idle");
  updateControls();
}

async function stopAnswer() {
  const answer = activeAnswer();
  if (!answer?.generation) return;
  stopping = true;
  updateControls();
  try {
    const res = await fetch(`/v1/generations/${encodeURIComponent(answer.generation)}/cancel`, { method: "POST" });
    // 409: it finished first; the stream shows how.
    if (!res.ok && res.status !== 409) showNotice(`The answer could not be stopped (the server answered ${res.status}).`);
  } catch {
    showNotice("The answer could not be stopped: the server cannot be reached.");
  } finally {
    stopping = false;
    updateControls();
  }
}

function newConversation() {
  for (const stream of streams.values()) stream.close();
  streams.clear();
  conversation = { turns: [] };
  saveConversation();
  ui.messages.replaceChildren();
  views = new WeakMap();
  hideNotice();
  setConnection("idle");
  renderAll();
  ui.prompt.focus();
}

// ---- rendering ----

/** @type {WeakMap<Turn, { root: HTMLElement, content: HTMLElement, meta?: HTMLElement }>} */
let views = new WeakMap();

function renderAll() {
  for (const turn of conversation.turns) renderTurn(turn);
  ui.empty.hidden = conversation.turns.length > 0;
  updateControls();
}

function renderTurn(turn) {
  const stick = isScrolledToEnd();
  let view = views.get(turn);
  if (!view) {
    view = createView(turn);
    views.set(turn, view);
    ui.messages.append(view.root);
  }
  if (turn.role === "assistant") {
    view.root.dataset.generation = turn.generation ?? "";
    view.root.dataset.status = turn.status;
    view.root.setAttribute("aria-busy", String(turn.status === "streaming"));
    view.content.textContent = turn.text;
    view.meta.textContent = statusLine(turn);
  }
  if (stick) ui.chat.scrollTop = ui.chat.scrollHeight;
}

function createView(turn) {
  const root = document.createElement("article");
  root.className = `message ${turn.role}`;
  const who = document.createElement("h2");
  who.className = "who";
  who.textContent = turn.role === "user" ? "You" : "Lifeline";
  const content = document.createElement("div");
  content.className = "content";
  root.append(who, content);
  if (turn.role === "user") {
    content.textContent = turn.content;
    return { root, content };
  }
  const meta = document.createElement("p");
  meta.className = "meta";
  root.append(meta);
  return { root, content, meta };
}

function statusLine(answer) {
  switch (answer.status) {
    case "streaming":
      return answer.note ?? (answer.generation ? "" : "Sending…");
    case "failed":
      return `Failed: ${answer.error ?? "unknown error"}`;
    case "cancelled":
      return "Stopped.";
    default:
      return "";
  }
}

function setConnection(state) {
  if (ui.connection.dataset.state === state) return;
  ui.connection.dataset.state = state;
  ui.connection.textContent = CONNECTION_LABELS[state];
}

function updateControls() {
  const answer = activeAnswer();
  ui.send.disabled = answer !== undefined;
  ui.stop.disabled = !answer?.generation || stopping;
  ui.empty.hidden = conversation.turns.length > 0;
}

function showNotice(text) {
  ui.notice.textContent = text;
  ui.notice.hidden = false;
}

function hideNotice() {
  ui.notice.hidden = true;
  ui.notice.textContent = "";
}

/** Whether the reader is at the end of the conversation, so new text should keep it in view. */
function isScrolledToEnd() {
  return ui.chat.scrollTop + ui.chat.clientHeight >= ui.chat.scrollHeight - 80;
}

// ---- small things ----

function byId(id) {
  const element = document.getElementById(id);
  if (!element) throw new Error(`the page has no #${id}`);
  return element;
}

/** A random Idempotency-Key; getRandomValues also works where randomUUID does not (plain http). */
function newRequestKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return `chat-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---- wiring ----

ui.form.addEventListener("submit", (event) => {
  event.preventDefault();
  const content = ui.prompt.value.trim();
  if (content === "" || activeAnswer()) return;
  ui.prompt.value = "";
  hideNotice();
  void sendMessage(content);
});

ui.prompt.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    ui.form.requestSubmit();
  }
});

ui.stop.addEventListener("click", () => void stopAnswer());
ui.newChat.addEventListener("click", newConversation);

renderAll();
// Answers that were under way when the page was last closed continue; a POST that was cut off
// is sent again with its Idempotency-Key, so it finds the generation it had created, if any.
for (const turn of conversation.turns) {
  if (turn.role !== "assistant" || turn.status !== "streaming") continue;
  if (turn.generation) follow(turn, true);
  else void createGeneration(turn);
}
