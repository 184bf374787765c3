// The read key: asked once per browser tab (sessionStorage, not localStorage, so it leaves
// with the tab), sent by api.js as "Authorization: Bearer <key>".
import { el } from "./dom.js";

const STORAGE_KEY = "log-collector.read-key";

export function getKey() {
  try {
    return sessionStorage.getItem(STORAGE_KEY) || "";
  } catch {
    return "";
  }
}

export function setKey(key) {
  sessionStorage.setItem(STORAGE_KEY, key);
}

export function forgetKey() {
  sessionStorage.removeItem(STORAGE_KEY);
}

// The prompt: a form asking for the key. `check(key)` resolves to null when the server takes
// the key, else to the reason it refused it; `done()` runs once a key was accepted.
// `message` says why the prompt shows (the server's refusal of the previous key, if any).
export function keyPrompt({ check, done, message }) {
  const input = el("input", {
    type: "password",
    name: "key",
    autocomplete: "off",
    placeholder: "read key",
    testid: "key-input",
    "aria-label": "read key",
  });
  const status = el("p", { className: "key-message", testid: "key-message", role: "alert" });
  if (message) status.textContent = message;
  const submit = el("button", { type: "submit", testid: "key-submit" }, "Open");
  const form = el(
    "form",
    {
      className: "key-prompt",
      testid: "key-prompt",
      onsubmit: async (event) => {
        event.preventDefault();
        const key = input.value.trim();
        if (!key) {
          status.textContent = "Enter the read key (LOG_COLLECTOR_READ_KEYS).";
          return;
        }
        submit.disabled = true;
        status.textContent = "Checking…";
        const refused = await check(key);
        submit.disabled = false;
        if (refused) {
          status.textContent = `This key was refused: ${refused}`;
          input.select();
          return;
        }
        setKey(key);
        done();
      },
    },
    el("h2", {}, "This server needs a read key"),
    el(
      "p",
      {},
      "The logs are read with a key of LOG_COLLECTOR_READ_KEYS. It stays in this tab only.",
    ),
    el("label", {}, "Read key ", input),
    submit,
    status,
  );
  queueMicrotask(() => input.focus());
  return form;
}
