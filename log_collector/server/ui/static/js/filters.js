// The filter bar shared by Explore and Live tail: services, level toggles, environment, time
// range (presets and a custom since/until), a text box that takes words and field:value
// tokens, and the saved views and recent queries. Every change is a navigate(): the URL
// holds the filters.
import { el, onKeys } from "./dom.js";
import { isAbort, showError } from "./api.js";
import {
  EXCLUDABLE_FIELDS, LEVELS, META_PREFIX, NOT_PREFIX, PAGES, readState, recentQueries, toSearch,
  withChanges,
} from "./state.js";

export const RANGE_PRESETS = ["15m", "1h", "6h", "24h", "7d"];
export const DEFAULT_SINCE = "24h";
const ENVIRONMENTS = ["production", "staging", "development", "test", "local"];

// Filters the text box writes as field:value tokens (the others have their own controls).
const TOKEN_FIELDS = [
  "min_level", "trace_id", "user_id", "session_id", "path", "method", "error_type",
  "function_name",
];
// Fields a token may name: those above and the ones with their own control.
const ALL_TOKEN_FIELDS = [...TOKEN_FIELDS, "service", "level", "environment", "since", "until"];

// The filter change that leaves out `field` = `value` (a facet's "exclude", a `-field:value`
// token). Levels are a closed set: excluding one asks for the others. Any other field becomes
// a `not.FIELD` value of the API, and an include of that same value is dropped.
export function excludeChange(filters, field, value) {
  if (!EXCLUDABLE.has(field)) return null;
  if (field === "level") {
    const admitted = filters.level && filters.level.length ? filters.level : LEVELS;
    return { level: admitted.filter((level) => level !== value), min_level: null };
  }
  const name = NOT_PREFIX + field;
  const current = filters[name] || [];
  const changes = { [name]: current.includes(value) ? current : [...current, value] };
  if (field === "service") {
    changes.service = (filters.service || []).filter((service) => service !== value);
  } else if (filters[field] === value) {
    changes[field] = null;
  }
  return changes;
}
export const EXCLUDABLE = new Set(EXCLUDABLE_FIELDS);

function quoted(value) {
  return /[\s"]/.test(value) ? `"${value.replace(/"/g, "")}"` : value;
}

// The text box's content for `filters`: the token fields, then the free text.
export function tokensText(filters) {
  const parts = [];
  for (const name of TOKEN_FIELDS) {
    if (filters[name]) parts.push(`${name}:${quoted(filters[name])}`);
  }
  for (const name of Object.keys(filters).filter((n) => n.startsWith(META_PREFIX)).sort()) {
    parts.push(`${name}:${quoted(filters[name])}`);
  }
  for (const field of EXCLUDABLE_FIELDS) {
    for (const value of filters[NOT_PREFIX + field] || []) parts.push(`-${field}:${quoted(value)}`);
  }
  if (filters.q) parts.push(quoted(filters.q));
  return parts.join(" ");
}

// `level:ERROR path:/api/users "two words" -level:DEBUG` -> the filter changes it asks for:
// token fields not in the text are cleared, service and level tokens add to their lists, and
// the words left over are the text search q. Unknown field names stay part of the text.
export function parseTokens(text, filters) {
  const changes = { q: null };
  for (const name of TOKEN_FIELDS) changes[name] = null;
  // The exclusions are all in the text (tokensText writes them there): those left out go.
  for (const field of EXCLUDABLE_FIELDS) changes[NOT_PREFIX + field] = [];
  for (const name of Object.keys(filters)) if (name.startsWith(META_PREFIX)) changes[name] = null;
  const words = [];
  const problems = [];
  const pattern = /(-?)([A-Za-z_][\w.-]*):(?:"([^"]*)"|(\S+))|"([^"]*)"|(\S+)/g;
  for (const match of text.matchAll(pattern)) {
    const [, negated, field, quotedValue, bareValue, phrase, word] = match;
    if (field === undefined) {
      words.push(phrase !== undefined ? phrase : word);
      continue;
    }
    const value = quotedValue !== undefined ? quotedValue : bareValue;
    const known = ALL_TOKEN_FIELDS.includes(field) || field.startsWith(META_PREFIX);
    if (!known) {
      words.push(match[0]);
      continue;
    }
    if (negated) {
      const shown = field === "level" || field === "method" ? value.toUpperCase() : value;
      const excluded = excludeChange({ ...filters, ...changes }, field, shown);
      if (excluded) Object.assign(changes, excluded);
      else problems.push(`-${field}: the API cannot exclude ${field} values`);
      continue;
    }
    if (field === "service" || field === "level") {
      const current = changes[field] || filters[field] || [];
      const one = field === "level" ? value.toUpperCase() : value;
      changes[field] = current.includes(one) ? current : [...current, one];
    } else {
      changes[field] = field === "min_level" ? value.toUpperCase() : value;
    }
  }
  if (words.length) changes.q = words.join(" ");
  return { changes, problems };
}

// The service names for the dropdown, asked once a minute at most rather than on every
// change of filter.
const SERVICES_TTL_MS = 60_000;
let serviceCache = { at: 0, list: null };

async function knownServices(api) {
  if (serviceCache.list && Date.now() - serviceCache.at < SERVICES_TTL_MS) {
    return serviceCache.list;
  }
  const list = await api.get("/api/services");
  serviceCache = { at: Date.now(), list };
  return list;
}

function pressed(on) {
  return on ? "true" : "false";
}

// The bar for ctx.state; options.timeRange (default true) shows the time controls (the live
// tail has none: it shows what arrives from now on); options.servicesAfter, a promise: the
// service dropdown asks for its names once it settles, after the page's own first request.
export function filterBar(ctx, { timeRange = true, servicesAfter = null } = {}) {
  const { state, navigate } = ctx;
  const filters = state.filters;
  // Changing what is shown closes the detail panel, whose line may no longer be listed.
  const go = (changes) => navigate(withChanges(state, { filters: changes, detail: null }));

  const services = el("select", {
    name: "service",
    "aria-label": "add a service",
    testid: "filter-service",
    onchange: (event) => {
      const value = event.target.value;
      if (value && !filters.service.includes(value)) go({ service: [...filters.service, value] });
    },
  }, el("option", { value: "" }, "service…"));
  for (const name of filters.service) services.append(el("option", { value: name }, name));
  const fillServices = () => knownServices(ctx.api).then((list) => {
    for (const row of list) {
      if (!filters.service.includes(row.service)) {
        services.append(el("option", { value: row.service }, row.service));
      }
    }
  });
  // Once servicesAfter settles, fulfilled or not: a failed page request is the page's to report.
  Promise.resolve(servicesAfter).then(fillServices, fillServices).catch((error) => {
    if (!isAbort(error)) throw error;
  });
  const chips = filters.service.map((name) =>
    el("span", { className: "chip", dataset: { service: name } }, name,
      el("button", {
        type: "button",
        title: `remove ${name}`,
        "aria-label": `remove service ${name}`,
        onclick: () => go({ service: filters.service.filter((s) => s !== name) }),
      }, "×")),
  );

  const levels = el("span", { className: "levels", role: "group", "aria-label": "levels" },
    LEVELS.map((level) =>
      el("button", {
        type: "button",
        className: `level-toggle level-${level}`,
        "aria-pressed": pressed(filters.level.includes(level)),
        testid: `filter-level-${level}`,
        onclick: () => {
          const on = filters.level.includes(level);
          go({ level: on ? filters.level.filter((l) => l !== level) : [...filters.level, level] });
        },
      }, level),
    ),
  );

  const environment = el("select", {
    name: "environment",
    "aria-label": "environment",
    testid: "filter-environment",
    onchange: (event) => go({ environment: event.target.value || null }),
  }, el("option", { value: "" }, "any environment"),
  ENVIRONMENTS.map((name) =>
    el("option", { value: name, selected: filters.environment === name }, name)));

  const q = el("input", {
    type: "search",
    name: "q",
    className: "filter-q",
    placeholder: 'text, or field:value  e.g.  path:/api/users "timed out"',
    "aria-label": "search",
    spellcheck: "false",
    autocomplete: "off",
    testid: "filter-q",
  });
  q.value = tokensText(filters);

  const since = el("input", {
    name: "since", className: "time-input", placeholder: "since: ISO or 2h", "aria-label": "since",
    testid: "filter-since",
  });
  const until = el("input", {
    name: "until", className: "time-input", placeholder: "until: ISO or empty", "aria-label": "until",
    testid: "filter-until",
  });
  since.value = filters.since || "";
  until.value = filters.until || "";

  const submit = (event) => {
    event.preventDefault();
    const { changes, problems } = parseTokens(q.value, filters);
    if (problems.length) showError(problems.join("; "));
    if (timeRange) {
      changes.since = since.value.trim() || null;
      changes.until = until.value.trim() || null;
    }
    go(changes);
  };

  const bar = el("form", { className: "filter-bar", testid: "filter-bar", onsubmit: submit },
    el("div", { className: "filter-row" },
      q,
      el("button", { type: "submit", className: "primary", testid: "filter-apply" }, "Search"),
      savedViews(ctx),
    ),
    el("div", { className: "filter-row" },
      services, chips, levels, environment,
      timeRange ? rangeControls(filters, go, since, until) : null,
      el("button", {
        type: "button",
        className: "link",
        testid: "filter-clear",
        onclick: () => navigate(withChanges(state, {
          filters: Object.fromEntries(Object.keys(filters).map((n) => [n, null])),
          detail: null,
        })),
      }, "clear"),
    ),
  );
  return bar;
}

function rangeControls(filters, go, since, until) {
  const active = !filters.until ? filters.since || DEFAULT_SINCE : null;
  return el("span", { className: "range", role: "group", "aria-label": "time range" },
    RANGE_PRESETS.map((preset) =>
      el("button", {
        type: "button",
        className: "range-preset",
        "aria-pressed": pressed(active === preset),
        testid: `filter-range-${preset}`,
        onclick: () => go({ since: preset, until: null }),
      }, preset),
    ),
    since, until,
    el("button", { type: "submit", testid: "filter-range-apply" }, "apply"),
  );
}

// A saved view or recent query opens as the URL it holds; the page name is checked, the
// query string read by readState like any URL.
function openQuery(ctx, page, query) {
  if (!PAGES.includes(page)) return;
  ctx.navigate(readState({ pathname: `/ui/${page}`, search: `?${query}` }));
}

// "Views": the saved views (server) and this browser's recent queries, loaded when opened;
// "save view" stores the current page and query under a name.
function savedViews(ctx) {
  const list = el("div", { className: "menu-list" });
  const load = async () => {
    const recent = recentQueries();
    list.replaceChildren(el("p", { className: "muted" }, "loading…"));
    let views = [];
    try {
      views = (await ctx.api.get("/api/views")).views || [];
    } catch (error) {
      if (!isAbort(error)) throw error;
      views = null;
    }
    // Through el(), which flattens the arrays of items.
    list.replaceChildren(el("div", {},
      el("h3", {}, "Saved views"),
      views === null
        ? el("p", { className: "muted" }, "saved views are unavailable")
        : views.length === 0
          ? el("p", { className: "muted" }, "none yet")
          : views.map((view) =>
            el("div", { className: "menu-item" },
              el("button", {
                type: "button",
                className: "link",
                testid: "saved-view",
                dataset: { name: view.name },
                onclick: () => openQuery(ctx, view.page, view.query),
              }, view.name),
              el("span", { className: "muted" }, view.page),
              el("button", {
                type: "button",
                className: "link",
                title: `delete ${view.name}`,
                testid: "delete-view",
                onclick: async () => {
                  try {
                    await ctx.api.delete(`/api/views/${encodeURIComponent(view.id)}`);
                  } catch (error) {
                    if (!isAbort(error)) throw error;
                  }
                  load();
                },
              }, "delete"))),
      el("h3", {}, "Recent queries"),
      recent.length === 0
        ? el("p", { className: "muted" }, "none yet")
        : recent.map((r) =>
          el("button", {
            type: "button",
            className: "link menu-item",
            testid: "recent-query",
            onclick: () => openQuery(ctx, r.page, r.query),
          }, `${r.page}: ${readable(r.query)}`)),
    ));
  };
  const menu = el("details", {
    className: "menu",
    testid: "saved-views",
    ontoggle: (event) => {
      if (event.target.open) load();
    },
  }, el("summary", {}, "Views"), el("div", { className: "menu-body" }, list, saveForm(ctx)));
  return menu;
}

function readable(query) {
  return [...new URLSearchParams(query)].map(([name, value]) => `${name}=${value}`).join(" ");
}

function saveForm(ctx) {
  const name = el("input", {
    name: "view-name",
    placeholder: "name of this view",
    "aria-label": "view name",
    testid: "save-view-name",
    // Enter here saves the view instead of submitting the filter bar around it.
    onkeydown: onKeys(["Enter"], () => save()),
  });
  const message = el("span", { className: "muted", role: "status" });
  const save = async () => {
    const text = name.value.trim();
    if (!text) {
      message.textContent = "give it a name";
      return;
    }
    const query = toSearch({ ...ctx.state, detail: null });
    try {
      await ctx.api.post("/api/views", { name: text, page: ctx.state.page, query });
      message.textContent = `saved “${text}”`;
      name.value = "";
    } catch (error) {
      if (!isAbort(error)) throw error;
      message.textContent = "not saved";
    }
  };
  return el("div", { className: "save-view" },
    name,
    el("button", { type: "button", testid: "save-view", onclick: save }, "save view"),
    message,
  );
}
