// The Lifeline chat page: a conversation whose answers survive reloads, cut connections and
// server restarts. The conversation lives in localStorage; an answer in progress is followed with
// the Lifeline client SDK (served by the gateway at /client.js), which resumes from its cursor,
// applies each entry once and in order, and rebuilds the text on a reset (DESIGN §3).

import { createClient, LifelineClientError, routes } from "/client.js";
import { currentKey, keyForm, refusalOf } from "./api-key.js";

/**
 * @typedef {import("/client.js").AnswerFollow} AnswerFollow
 * @typedef {import("/client.js").ChatMessage} ChatMessage
 * @typedef {import("/client.js").FinalStatus} FinalStatus
 * @typedef {import("/client.js").FollowEvent} FollowEvent
 * @typedef {import("/client.js").FollowState} FollowState
 * @typedef {import("/client.js").TransportName} TransportName
 * @typedef {"idle" | "connecting" | "live" | "reconnecting" | "resumed"} ConnectionState what #connection shows
 * @typedef {"new" | "resumed" | "reconnect"} FollowOrigin why a follow starts (see `follow`)
 */

const STORAGE_KEY = "lifeline.chat.v1";
const MODEL = "sim";

/** @type {Record<ConnectionState, string>} */
const CONNECTION_LABELS = {
  idle: "Idle",
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  resumed: "Resumed",
};
/** @type {Record<TransportName, string>} */
const TRANSPORT_LABELS = { sse: "Server-Sent Events", websocket: "WebSocket", "long-poll": "HTTP long-poll" };

// With keys configured, the client starts answers with the user's key and follows each with the
// read token it came with, renewed with the key when it expires; without keys, it sends nothing.
let client = newClient();
const keys = keyForm(() => {
  // The follows that stopped for want of a key go on under the new one; the old client has none left.
  const old = client;
  follows.clear(); // their loops see they are no longer current and leave quietly
  client = newClient();
  old.close();
  hideNotice();
  resumeAnswers({ startUnsent: true });
});

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
 *   status: "streaming" | FinalStatus, text: string, lastOffset: number,
 *   cursor?: string, error?: string, note?: string }} AnswerTurn
 *   `cursor` is the SDK's cursor of the entry `text` ends at: a reload resumes there.
 * @typedef {UserTurn | AnswerTurn} Turn
 * @typedef {{ turns: Turn[] }} Conversation
 */

/** @type {Conversation} */
let conversation = loadConversation();
/** @type {Map<AnswerTurn, AnswerFollow>} The SDK follows of answers in progress, by turn. */
const follows = new Map();
/** @type {Set<AnswerTurn>} Answers whose generation this tab is starting. */
const starting = new Set();
let stopping = false;

function newClient() {
  const apiKey = currentKey();
  return createClient({ baseUrl: "", ...(apiKey === undefined ? {} : { apiKey }) });
}

/**
 * Whether the gateway refused for want of a (valid) key, or because the key may not do this: the
 * key form is shown with why, and the answer waits for a key instead of failing.
 * @param {unknown} error
 */
function askedForKey(error) {
  const code = error instanceof LifelineClientError ? error.code : undefined;
  if (!refusalOf(code)) return false;
  keys.ask(code);
  setConnection("idle");
  return true;
}

// ---- conversation state ----

/** @returns {Conversation} */
function loadConversation() {
  try {
    const stored = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? "null");
    if (stored && Array.isArray(stored.turns) && stored.turns.every(isTurn)) return stored;
  } catch {
    // Unreadable state: start a new conversation.
  }
  return { turns: [] };
}

/**
 * Whether a stored value is a turn this page can show: storage may hold anything (an older page, a hand edit).
 * @param {unknown} value
 * @returns {value is Turn}
 */
function isTurn(value) {
  if (!value || typeof value !== "object") return false;
  const turn = /** @type {Record<string, unknown>} */ (value);
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

/**
 * The messages a model sees before `turnIndex`: every user message and every answer that has text.
 * @param {number} turnIndex
 */
function messagesBefore(turnIndex) {
  /** @type {ChatMessage[]} */
  const messages = [];
  for (const turn of conversation.turns.slice(0, turnIndex)) {
    if (turn.role === "user") messages.push({ role: "user", content: turn.content });
    else if (turn.text !== "") messages.push({ role: "assistant", content: turn.text });
  }
  return messages;
}

/** @returns {AnswerTurn | undefined} the answer being written, if any */
function activeAnswer() {
  return conversation.turns.filter((turn) => turn.role === "assistant").find((answer) => answer.status === "streaming");
}

// ---- actions ----

/** @param {string} content */
async function sendMessage(content) {
  /** @type {AnswerTurn} */
  const answer = { role: "assistant", generation: null, requestKey: newRequestKey(), status: "streaming", text: "", lastOffset: 0 };
  conversation.turns.push({ role: "user", content }, answer);
  // The key is stored before the POST: a reload that cut the POST off sends it again with the same key.
  saveConversation();
  renderAll();
  await createGeneration(answer);
}

/**
 * Starts the answer's generation; the SDK retries with the same Idempotency-Key, so it is created once.
 * @param {AnswerTurn} answer
 */
async function createGeneration(answer) {
  const messages = messagesBefore(conversation.turns.indexOf(answer));
  setConnection("connecting");
  let started;
  starting.add(answer);
  try {
    started = await client.start({ model: MODEL, messages }, { idempotencyKey: answer.requestKey });
  } catch (error) {
    if (askedForKey(error)) return waitForKey(answer);
    return finishAnswer(answer, "failed", messageOf(error, "The answer could not be started."));
  } finally {
    starting.delete(answer);
    updateControls();
  }
  if (!conversation.turns.includes(answer)) return; // a new conversation began meanwhile
  answer.generation = started.id;
  saveConversation();
  renderTurn(answer);
  await follow(answer, started.id, "new");
}

/**
 * Follows the answer to its terminal entry, from the stored cursor with the stored text (the SDK
 * rebuilds from offset 1 when it must); without a cursor it reads the log from the start.
 * @param {AnswerTurn} answer
 * @param {string} generation the answer's generation
 * @param {FollowOrigin} how a new answer; one already under way (a reload, another tab); or this
 *   tab's own follow again, after its connection was lost
 */
async function follow(answer, generation, how) {
  const options = answer.cursor === undefined ? {} : { cursor: answer.cursor, text: answer.text };
  const following = client.follow(generation, options);
  follows.set(answer, following);
  updateControls();
  const current = () => follows.get(answer) === following;
  let failure;
  try {
    for await (const event of following) {
      if (!current()) return;
      if (event.type === "state") showFollowState(event.state, how, following.transport);
      else if (event.type === "reset") applyReset(answer);
      else if (event.entry.type === "failed") failure = event.entry.error?.message;
      else applyEntry(answer, event);
    }
    const final = await following.done;
    if (!current()) return;
    answer.text = final.text;
    follows.delete(answer);
    finishAnswer(answer, final.status, final.status === "failed" ? (failure ?? "The answer failed.") : undefined);
  } catch (error) {
    if (!current()) return; // closed on purpose: a new conversation
    follows.delete(answer);
    if (askedForKey(error)) return waitForKey(answer);
    finishAnswer(answer, "failed", messageOf(error, "The answer can no longer be followed."));
  }
}

/**
 * The answer stays under way, and continues once the user gives a key (`resumeAnswers`).
 * @param {AnswerTurn} answer
 */
function waitForKey(answer) {
  answer.note = "Waiting for an API key…";
  saveConversation();
  renderTurn(answer);
  updateControls();
}

/**
 * The follow's state on #connection, with the transport it came over in its tooltip; `ended`
 * waits for the answer to finish (then idle).
 * @param {FollowState} state
 * @param {FollowOrigin} how
 * @param {TransportName | undefined} transport
 */
function showFollowState(state, how, transport) {
  if (state === "ended") return;
  if (transport) {
    ui.connection.dataset.transport = transport;
    ui.connection.title = `over ${TRANSPORT_LABELS[transport] ?? transport}`;
  }
  if (state === "live" && how !== "new") setConnection("resumed");
  else if (state === "connecting" && how === "reconnect") setConnection("reconnecting");
  else setConnection(state);
}

/**
 * The browser says its network changed: a stream that was open may be dead without a word (a
 * half-open TCP connection is only caught by the heartbeat timeout), so each follow that is not
 * live again is replaced by a new one from its cursor; the SDK retries it until the server answers.
 * @param {"offline" | "online"} change
 */
function reconnectFollows(change) {
  for (const [answer, following] of [...follows]) {
    if (change === "online" && (following.state === "live" || following.state === "resumed")) continue;
    void follow(answer, following.id, "reconnect");
    following.close();
  }
}

/**
 * @param {AnswerTurn} answer
 * @param {Extract<FollowEvent, { type: "entry" }>} event
 */
function applyEntry(answer, { entry, cursor, text }) {
  answer.text = text;
  answer.lastOffset = entry.offset;
  if (cursor === undefined) delete answer.cursor;
  else answer.cursor = cursor;
  if (entry.type === "retrying") answer.note = `The model failed (${entry.error?.message ?? "unknown error"}); retrying…`;
  else if (entry.type === "started" && entry.attempt > 1) answer.note = "Continuing where the answer stopped…";
  else if (entry.type === "rewind") answer.note = "The answer restarted.";
  else if (entry.type === "delta") delete answer.note;
  saveConversation();
  renderTurn(answer);
}

/**
 * The server could not vouch for the text: it is dropped and the log replays from offset 1.
 * @param {AnswerTurn} answer
 */
function applyReset(answer) {
  answer.text = "";
  answer.lastOffset = 0;
  delete answer.cursor;
  saveConversation();
  renderTurn(answer);
}

/**
 * @param {AnswerTurn} answer
 * @param {FinalStatus} status
 * @param {string | undefined} error why it failed, shown under it
 */
function finishAnswer(answer, status, error) {
  answer.status = status;
  delete answer.note;
  if (error === undefined) delete answer.error;
  else answer.error = error;
  saveConversation();
  renderTurn(answer);
  if (follows.size === 0) setConnection("idle");
  updateControls();
}

async function stopAnswer() {
  const answer = activeAnswer();
  if (!answer?.generation) return;
  stopping = true;
  updateControls();
  try {
    // An answer that finished first is not an error: the follow shows how it ended.
    await client.cancel(answer.generation);
  } catch (error) {
    if (askedForKey(error)) return;
    showNotice(`The answer could not be stopped: ${messageOf(error, "the server cannot be reached.")}`);
  } finally {
    stopping = false;
    updateControls();
  }
}

/**
 * Follows the answers under way; `startUnsent` also (re)sends those whose POST never returned an id.
 * @param {{ startUnsent: boolean }} options
 */
function resumeAnswers({ startUnsent }) {
  for (const turn of conversation.turns) {
    if (turn.role !== "assistant" || turn.status !== "streaming" || follows.has(turn) || starting.has(turn)) continue;
    delete turn.note;
    if (turn.generation) void follow(turn, turn.generation, "resumed");
    else if (startUnsent) void createGeneration(turn);
  }
}

/**
 * Another tab's copy of the conversation, except where this tab is further along on the same
 * answer: that tab may write a snapshot taken before the answer ended here.
 * @param {Conversation} theirs
 * @returns {Conversation}
 */
function mergeConversation(theirs) {
  /** @type {Map<string, AnswerTurn>} */
  const ours = new Map();
  for (const turn of conversation.turns) if (turn.role === "assistant") ours.set(turn.requestKey, turn);
  /** @type {(mine: AnswerTurn, other: AnswerTurn) => boolean} */
  const furtherAlong = (mine, other) =>
    other.status === "streaming" && (mine.status !== "streaming" || (mine.generation !== null && mine.lastOffset > other.lastOffset));
  return {
    turns: theirs.turns.map((turn) => {
      if (turn.role !== "assistant") return turn;
      const mine = ours.get(turn.requestKey);
      return mine && furtherAlong(mine, turn) ? mine : turn;
    }),
  };
}

function newConversation() {
  const closing = [...follows.values()];
  follows.clear();
  for (const following of closing) following.close();
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

/**
 * A turn on the page: its article and content; an answer's also has its status line and Inspect link.
 * @typedef {{ root: HTMLElement, content: HTMLElement, meta?: HTMLElement, inspect?: HTMLAnchorElement }} TurnView
 */

/** @type {WeakMap<Turn, TurnView>} */
let views = new WeakMap();

function renderAll() {
  for (const turn of conversation.turns) renderTurn(turn);
  ui.empty.hidden = conversation.turns.length > 0;
  updateControls();
}

/** @param {Turn} turn */
function renderTurn(turn) {
  const stick = isScrolledToEnd();
  let view = views.get(turn);
  if (!view) {
    view = createView(turn);
    views.set(turn, view);
    ui.messages.append(view.root);
  }
  if (turn.role === "assistant" && view.meta && view.inspect) {
    view.root.dataset.generation = turn.generation ?? "";
    view.root.dataset.status = turn.status;
    view.root.setAttribute("aria-busy", String(turn.status === "streaming"));
    view.content.textContent = turn.text;
    view.meta.textContent = statusLine(turn);
    view.inspect.hidden = !turn.generation;
    if (turn.generation) view.inspect.href = routes.inspectPage(turn.generation);
  }
  if (stick) ui.chat.scrollTop = ui.chat.scrollHeight;
}

/**
 * @param {Turn} turn
 * @returns {TurnView}
 */
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
  // The answer's timeline, replayed from its log: calls, retries, takeovers, rewinds.
  const inspect = document.createElement("a");
  inspect.className = "inspect-link";
  inspect.textContent = "Inspect";
  inspect.target = "_blank";
  // With an opener, the new tab starts with a copy of this tab's sessionStorage: the API key, if one was given.
  inspect.rel = "opener";
  inspect.hidden = true;
  root.append(meta, inspect);
  return { root, content, meta, inspect };
}

/** @param {AnswerTurn} answer */
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

/** @param {ConnectionState} state */
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

/** @param {string} text */
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

/** @param {string} id */
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

/**
 * @param {unknown} error
 * @param {string} fallback what to say when the error has no message of its own
 */
function messageOf(error, fallback) {
  return error instanceof Error && error.message !== "" ? error.message : fallback;
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
window.addEventListener("offline", () => reconnectFollows("offline"));
window.addEventListener("online", () => reconnectFollows("online"));
ui.newChat.addEventListener("click", newConversation);

// Another tab changed the conversation: an idle tab takes it over and follows what that tab started.
// A tab that is following an answer keeps its own copy; both write the same answer as it ends.
window.addEventListener("storage", (event) => {
  if (event.key !== STORAGE_KEY || follows.size > 0 || starting.size > 0) return;
  const next = mergeConversation(loadConversation());
  if (JSON.stringify(next) === JSON.stringify(conversation)) return;
  conversation = next;
  ui.messages.replaceChildren();
  views = new WeakMap();
  renderAll();
  // An answer without its generation yet is the other tab's POST in flight: its next write brings the id.
  resumeAnswers({ startUnsent: false });
});

renderAll();
// Answers that were under way when the page was last closed continue; a POST that was cut off
// is sent again with its Idempotency-Key, so it finds the generation it had created, if any.
resumeAnswers({ startUnsent: true });
