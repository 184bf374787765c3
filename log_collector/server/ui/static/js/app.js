// The shell: the top navigation, the error banner, the key prompt, and the router that
// renders the page named by the URL. Each page module exports
// `async render(root, ctx) -> cleanup?` with ctx = {state, navigate, api}; a cleanup function
// may carry `update(state) -> bool`, which takes the next URL's state in place when it can.
// The navigation carries the open alerts' badge (alerts.js), asked every minute.
import { alertsBadge } from "./alerts.js";
import { el } from "./dom.js";
import { api, hideError, isAbort, setUnauthorisedHandler } from "./api.js";
import { forgetKey, getKey, keyPrompt } from "./auth.js";
import { navigate, readState, setRenderer, toSearch } from "./state.js";

// Loaded when first visited, so a page module that fails to load breaks only its own page.
const PAGE_MODULES = {
  explore: () => import("./pages/explore.js"),
  tail: () => import("./pages/tail.js"),
  trace: () => import("./pages/trace.js"),
  overview: () => import("./pages/overview.js"),
  ask: () => import("./pages/ask.js"),
};

const NAV = [
  ["explore", "Explore"],
  ["tail", "Live tail"],
  ["overview", "Overview"],
  ["ask", "Ask"],
];
// The pages that take the current page's filters along (the Ask page's URL holds a question
// in `q`, not a text search, so it passes nothing on).
const FILTER_PAGES = ["explore", "tail"];

const nav = document.getElementById("nav");
const main = document.getElementById("page");
let cleanup = null;
let generation = 0;
let prompting = false;
const badge = alertsBadge({
  onOpen: () => navigate(readState({ pathname: "/ui/overview", search: "" })),
});

function runCleanup() {
  const done = cleanup;
  cleanup = null;
  if (typeof done === "function") {
    try {
      done();
    } catch (error) {
      console.error(error);
    }
  }
}

function renderNav(state) {
  // Explore and Live tail share their filters: switching between them keeps them.
  const carried = state.page === "ask" ? "" : toSearch({ filters: state.filters });
  const links = NAV.map(([page, label]) => {
    const search = !FILTER_PAGES.includes(page) || !carried ? "" : `?${carried}`;
    const href = `/ui/${page}${search}`;
    return el("a", {
      href,
      testid: `nav-${page}`,
      className: state.page === page ? "active" : "",
      "aria-current": state.page === page ? "page" : undefined,
      onclick: (event) => {
        if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
        event.preventDefault();
        navigate(readState({ pathname: `/ui/${page}`, search }));
      },
    }, label);
  });
  const signOut = getKey()
    ? el("button", {
      type: "button",
      className: "link",
      testid: "sign-out",
      onclick: () => {
        forgetKey();
        render({ force: true });
      },
    }, "forget key")
    : null;
  nav.replaceChildren(el("span", { className: "brand" }, "log-collector"), ...links, badge.element);
  if (signOut) nav.append(signOut);
}

// `force`: render the page anew even if it could take the URL in place (a key forgotten).
async function render({ force = false } = {}) {
  const state = readState();
  // A page may take a change of URL in place (its cleanup's `update(state)` says true), as
  // Explore does for opening a row: nothing is fetched again but what changed.
  const inPlace = !force && !prompting && cleanup && typeof cleanup.update === "function";
  if (inPlace && cleanup.update(state)) {
    renderNav(state);
    return;
  }
  const mine = ++generation;
  runCleanup();
  hideError();
  prompting = false;
  document.title = `${state.page} · log-collector`;
  renderNav(state);
  const root = el("div", { className: `page page-${state.page}` });
  main.replaceChildren(root);
  let result;
  try {
    const module = await PAGE_MODULES[state.page]();
    if (mine !== generation) return;
    result = await module.render(root, { state, navigate, api });
  } catch (error) {
    if (mine === generation && !isAbort(error)) {
      root.append(el("p", { className: "page-error" }, `This page failed: ${error.message}`));
      console.error(error);
    }
    return;
  }
  if (mine !== generation) {
    if (typeof result === "function") result();
    return;
  }
  cleanup = result;
}

// The server refused the key (or none was given): stop the page, forget a refused key, ask.
function askForKey(reason) {
  if (prompting) return;
  prompting = true;
  generation++;
  runCleanup();
  const hadKey = Boolean(getKey());
  forgetKey();
  renderNav(readState());
  main.replaceChildren(keyPrompt({
    check: (key) => api.check(key),
    done: () => render({ force: true }).then(() => badge.start()),
    message: hadKey ? `The stored key was refused: ${reason}` : "",
  }));
}

setUnauthorisedHandler(askForKey);
setRenderer(render);
window.addEventListener("popstate", () => render());
// Errors already shown to the person (banner, key prompt) and fetches we aborted ourselves
// are not bugs: keep them out of the console.
window.addEventListener("unhandledrejection", (event) => {
  if (isAbort(event.reason)) event.preventDefault();
});
// The badge asks once the first page has its data, so as not to compete with it.
render().then(() => badge.start());
