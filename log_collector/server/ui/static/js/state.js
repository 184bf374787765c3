// The URL is the state. readState() parses location into a plain object; navigate() writes
// one back (pushState, or replaceState) and re-renders, so every view can be shared by its
// URL and back/forward restore it.

export const PAGES = ["explore", "tail", "trace", "overview", "ask"];
export const LEVELS = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];

// The API's filters (DESIGN section 10), in the order they are written into URLs.
// `not.FIELD` (repeatable) leaves out the logs whose FIELD has that value.
export const NOT_PREFIX = "not.";
export const EXCLUDABLE_FIELDS = [
  "service", "level", "environment", "trace_id", "user_id", "session_id", "path", "method",
  "error_type", "function_name",
];
export const REPEATED_FILTERS = [
  "service", "level", ...EXCLUDABLE_FIELDS.map((field) => NOT_PREFIX + field),
];
export const SINGLE_FILTERS = [
  "min_level", "environment", "since", "until", "q", "trace_id", "user_id", "session_id",
  "path", "method", "error_type", "function_name",
];
export const META_PREFIX = "meta.";

const RECENT_KEY = "log-collector.recent";
const RECENT_MAX = 20;

let renderer = () => {};

// app.js registers the function that renders the current URL.
export function setRenderer(render) {
  renderer = render;
}

export function emptyFilters() {
  return Object.fromEntries(REPEATED_FILTERS.map((name) => [name, []]));
}

// {page, trace_id, filters: {service: [], level: [], since, q, "meta.k", ...}, columns: [],
//  detail, extra: {other params}}
export function readState(loc = window.location) {
  const parts = loc.pathname.replace(/^\/ui\/?/, "").split("/");
  const page = PAGES.includes(parts[0]) ? parts[0] : "explore";
  const trace_id =
    page === "trace" && parts.length > 1 ? decodeURIComponent(parts.slice(1).join("/")) : null;
  const state = { page, trace_id, filters: emptyFilters(), columns: [], detail: null, extra: {} };
  for (const [name, value] of new URLSearchParams(loc.search)) {
    if (value === "") continue;
    if (REPEATED_FILTERS.includes(name)) {
      if (!state.filters[name].includes(value)) state.filters[name].push(value);
    } else if (SINGLE_FILTERS.includes(name) || name.startsWith(META_PREFIX)) {
      state.filters[name] = value;
    } else if (name === "columns") {
      state.columns = value.split(",").filter(Boolean);
    } else if (name === "detail") {
      state.detail = value;
    } else {
      state.extra[name] = value;
    }
  }
  return state;
}

// The filters as API parameters ({name: value or [values]}), empty ones left out.
export function filterParams(filters) {
  const params = {};
  for (const name of REPEATED_FILTERS) {
    if (filters[name] && filters[name].length) params[name] = [...filters[name]];
  }
  for (const [name, value] of Object.entries(filters)) {
    if (REPEATED_FILTERS.includes(name)) continue;
    if (value !== undefined && value !== null && value !== "") params[name] = value;
  }
  return params;
}

// The URL's query string (without "?") for `state`.
export function toSearch(state) {
  const search = new URLSearchParams();
  const filters = state.filters || {};
  for (const name of REPEATED_FILTERS) {
    for (const value of filters[name] || []) search.append(name, value);
  }
  for (const name of SINGLE_FILTERS) {
    if (filters[name]) search.set(name, filters[name]);
  }
  for (const name of Object.keys(filters).filter((n) => n.startsWith(META_PREFIX)).sort()) {
    if (filters[name]) search.set(name, filters[name]);
  }
  if (state.columns && state.columns.length) search.set("columns", state.columns.join(","));
  if (state.detail) search.set("detail", state.detail);
  for (const [name, value] of Object.entries(state.extra || {})) {
    if (value !== undefined && value !== null && value !== "") search.set(name, value);
  }
  return search.toString();
}

export function toUrl(state) {
  const path =
    state.page === "trace" && state.trace_id
      ? `/ui/trace/${encodeURIComponent(state.trace_id)}`
      : `/ui/${state.page}`;
  const search = toSearch(state);
  return search ? `${path}?${search}` : path;
}

// A copy of `state` with `changes` applied; `changes.filters` merges into the filters (a
// value of null or "" removes that filter).
export function withChanges(state, changes) {
  const next = {
    ...state,
    filters: { ...state.filters },
    columns: [...(state.columns || [])],
    extra: { ...(state.extra || {}) },
  };
  for (const [key, value] of Object.entries(changes)) {
    if (key === "filters") {
      for (const [name, filter] of Object.entries(value)) {
        if (filter === null || filter === undefined || filter === "") delete next.filters[name];
        else next.filters[name] = Array.isArray(filter) ? [...filter] : filter;
      }
      for (const name of REPEATED_FILTERS) next.filters[name] = next.filters[name] || [];
    } else if (key === "extra") {
      Object.assign(next.extra, value);
    } else {
      next[key] = value;
    }
  }
  return next;
}

// Shows `state`: a new history entry, or `replace` the current one (for changes not worth a
// back step, such as closing a panel). Explore and tail queries join the recent list.
export function navigate(state, { replace = false } = {}) {
  const url = toUrl(state);
  const current = window.location.pathname + window.location.search;
  if (url !== current) {
    if (replace) history.replaceState(null, "", url);
    else history.pushState(null, "", url);
  }
  rememberRecent(state);
  renderer();
}

function rememberRecent(state) {
  if (state.page !== "explore" && state.page !== "tail") return;
  const query = toSearch({ ...state, detail: null });
  if (!query) return;
  const recent = recentQueries().filter((r) => !(r.page === state.page && r.query === query));
  recent.unshift({ page: state.page, query, at: new Date().toISOString() });
  try {
    localStorage.setItem(RECENT_KEY, JSON.stringify(recent.slice(0, RECENT_MAX)));
  } catch {
    // Storage full or disabled: the list is a convenience.
  }
}

// This browser's last queries, newest first: [{page, query, at}].
export function recentQueries() {
  try {
    const list = JSON.parse(localStorage.getItem(RECENT_KEY) || "[]");
    return Array.isArray(list)
      ? list.filter((r) => r && PAGES.includes(r.page) && typeof r.query === "string")
      : [];
  } catch {
    return [];
  }
}
