// The API key of a deployment that asks for one, as the pages hold it: asked of the user once, kept
// in this tab's sessionStorage (gone when the tab closes), sent only as `Authorization: Bearer`,
// never put in a URL nor written to the console. Without keys configured, nobody is asked.

const STORAGE_KEY = "lifeline.apiKey";

/** What an API key can look like at all (the SDK refuses anything else before sending it). */
const KEY_SHAPE = /^[\x21-\x7e]{1,512}$/;

/** Codes with which the gateway asks for a (valid) key. */
const KEY_REFUSALS = new Set(["unauthorized", "invalid_api_key", "api_key_revoked"]);

/** @returns {string | undefined} the key this tab was given, if any */
function storedKey() {
  try {
    return sessionStorage.getItem(STORAGE_KEY) ?? undefined;
  } catch {
    return undefined; // storage disabled: the key lives as long as the page (see `saveKey`)
  }
}

/** @type {string | undefined} the key when sessionStorage cannot hold it */
let unsaved;

/** @param {string} key */
function saveKey(key) {
  try {
    sessionStorage.setItem(STORAGE_KEY, key);
  } catch {
    unsaved = key;
  }
}

/** @returns {string | undefined} the key to send, if the user gave one */
export function currentKey() {
  return storedKey() ?? unsaved;
}

/** @returns {Record<string, string>} the `Authorization` header for the key, or none */
export function keyHeaders() {
  const key = currentKey();
  return key === undefined ? {} : { authorization: `Bearer ${key}` };
}

/**
 * What a refusal by the gateway means for the user: `key` when it asks for a key (none, unknown,
 * revoked), `forbidden` when the key may not do this, `undefined` for anything else.
 * @param {string | undefined} code the error's `code`
 * @returns {"key" | "forbidden" | undefined}
 */
export function refusalOf(code) {
  if (code !== undefined && KEY_REFUSALS.has(code)) return "key";
  return code === "forbidden" ? "forbidden" : undefined;
}

/**
 * The sentence shown above the key field for a refusal's code.
 * @param {string | undefined} code
 */
export function keyReason(code) {
  switch (code) {
    case "invalid_api_key":
      return "This API key is not valid here. Enter another one.";
    case "api_key_revoked":
      return "This API key was revoked. Enter another one.";
    case "forbidden":
      return "This API key may not do that: it needs the scopes generations:create and generations:read. Enter another one.";
    default:
      return "This Lifeline asks for an API key. Enter one to continue (it is kept in this tab only).";
  }
}

/**
 * Wires the page's key form (`#key-form` with `#key-reason` and `#api-key`): `ask(code)` shows it
 * with the reason for `code`; a submitted key is kept and handed to `onKey`.
 * @param {(key: string) => void} onKey
 * @returns {{ ask(code: string | undefined): void }}
 */
export function keyForm(onKey) {
  const form = /** @type {HTMLFormElement} */ (document.getElementById("key-form"));
  const reason = /** @type {HTMLElement} */ (document.getElementById("key-reason"));
  const input = /** @type {HTMLInputElement} */ (document.getElementById("api-key"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (key === "") return;
    if (!KEY_SHAPE.test(key)) {
      reason.textContent = "An API key is one word of visible characters (llk_…). Enter it again.";
      return;
    }
    input.value = "";
    form.hidden = true;
    saveKey(key);
    onKey(key);
  });
  return {
    ask(code) {
      reason.textContent = keyReason(code);
      form.hidden = false;
      input.focus();
    },
  };
}
