// Overview: the open alerts (when there are any), cards (logs in the range, errors and
// warnings in the last hour, services), the error rate over time, the top error types, the
// slowest endpoints and the services with the time each last logged (one gone silent is
// marked). The range is the URL's `since` (and `until`), 24 h by default; every service,
// error type and endpoint links to Explore.
// Each panel asks the API on its own, so one that fails shows its error and the rest stand.
import { el, formatTime } from "../dom.js";
import { ApiError } from "../api.js";
import { openAlerts } from "../alerts.js";
import { lineChart } from "../chart.js";
import { DEFAULT_SINCE, RANGE_PRESETS } from "../filters.js";
import { emptyFilters, toUrl, withChanges } from "../state.js";

const BUCKETS = 60;
const TOP = 10;
// A service is silent when it last logged longer ago than this while another logged within it.
export const SILENT_AFTER_MS = 15 * 60 * 1000;
const ERROR_LEVELS = ["ERROR", "FATAL"];

const number = (n) => Number(n).toLocaleString("en-US");

function percent(fraction) {
  if (!fraction) return "0%";
  const value = fraction * 100;
  return `${Number(value.toFixed(value < 1 ? 2 : 1))}%`;
}

function milliseconds(ms) {
  if (ms === null || ms === undefined) return "";
  if (ms >= 1000) return `${Number((ms / 1000).toFixed(2))} s`;
  return `${Number(ms.toFixed(ms < 10 ? 1 : 0))} ms`;
}

// 60 -> "1 min", 1800 -> "30 min", 10800 -> "3 h"
function interval(seconds) {
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${seconds / 60} min`;
  if (seconds < 86400) return `${seconds / 3600} h`;
  return `${seconds / 86400} d`;
}

// "3 min ago", from the time the page was drawn.
function ago(iso, now) {
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds} s ago`;
  const minutes = Math.round(seconds / 60);
  if (minutes < 120) return `${minutes} min ago`;
  const hours = Math.round(minutes / 60);
  if (hours < 48) return `${hours} h ago`;
  return `${Math.round(hours / 24)} d ago`;
}

// The names of the services gone silent: last seen over SILENT_AFTER_MS ago while some other
// service logged within it (when every service is quiet, none is singled out).
export function silentServices(services, now) {
  const quiet = (row) => now - Date.parse(row.last_seen) > SILENT_AFTER_MS;
  if (!services.some((row) => !quiet(row))) return new Set();
  return new Set(services.filter(quiet).map((row) => row.service));
}

function sumCounts(buckets, levels) {
  let total = 0;
  for (const bucket of buckets) {
    for (const [level, n] of Object.entries(bucket.counts)) {
      if (!levels || levels.includes(level)) total += n;
    }
  }
  return total;
}

export async function render(root, ctx) {
  const { state, navigate, api } = ctx;
  const controller = new AbortController();
  const signal = controller.signal;
  const range = { since: state.filters.since || DEFAULT_SINCE, until: state.filters.until };
  const rangeText = state.filters.until
    ? `${range.since} to ${range.until}`
    : RANGE_PRESETS.includes(range.since) ? `last ${range.since}` : `since ${range.since}`;
  // A link to Explore over this page's range, with `filters` (a click stays in the page).
  const explore = (filters, text, testid) => {
    const target = {
      page: "explore", trace_id: null, filters: { ...emptyFilters(), ...range, ...filters },
      columns: [], detail: null, extra: {},
    };
    return el("a", {
      href: toUrl(target),
      testid,
      title: `${text}: open in Explore`,
      onclick: (event) => {
        if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
        event.preventDefault();
        navigate(target);
      },
    }, text);
  };

  const presets = el("span", { className: "range", role: "group", "aria-label": "time range" },
    RANGE_PRESETS.map((preset) => el("button", {
      type: "button",
      className: "range-preset",
      testid: `filter-range-${preset}`,
      "aria-pressed": !state.filters.until && range.since === preset ? "true" : "false",
      onclick: () => navigate(withChanges(state, { filters: { since: preset, until: null } })),
    }, preset)));
  root.append(el("div", { className: "overview-head" },
    el("h1", {}, "Overview"),
    presets,
    el("span", { className: "muted" }, rangeText),
    el("span", { className: "spacer" }),
    el("button", {
      type: "button",
      testid: "overview-refresh",
      onclick: () => navigate(state, { replace: true }),
    }, "refresh"),
  ));

  const cards = {
    total: card("card-total", `Logs, ${rangeText}`),
    errors: card("card-errors", "Errors, last hour", "bad"),
    warnings: card("card-warnings", "Warnings, last hour", "warn"),
    services: card("card-services", "Services"),
  };
  // Shown only when the server has open alerts: a server without alerts (404) shows nothing.
  const alertsPlace = el("div", { className: "overview-alerts-place" });
  root.append(alertsPlace);
  root.append(el("section", { className: "overview-cards", testid: "overview-cards" },
    Object.values(cards).map((c) => c.element)));

  const errorRate = panel("overview-error-rate", "Error rate", "ERROR + FATAL of all logs");
  const errorTypes = panel("overview-error-types", "Top error types", rangeText);
  const endpoints = panel("overview-endpoints", "Slowest endpoints", `p95 of duration_ms, ${rangeText}`);
  const services = panel("overview-services", "Services", "last log, errors in the last hour");
  root.append(el("div", { className: "overview-grid" },
    el("div", { className: "overview-column" }, errorRate.element, endpoints.element),
    el("div", { className: "overview-column" }, errorTypes.element, services.element)));

  // Each panel's request is quiet: a failure shows in its panel, not in the banner, and
  // leaves the others standing. A refused key is the key prompt's business (already shown);
  // an error of our own code still surfaces.
  const options = { signal, quiet: true };
  const load = (target, promise, draw) =>
    promise.then(draw).catch((error) => {
      if (signal.aborted || error.name === "AbortError" || error.shown) return;
      target.fail(error);
      if (!(error instanceof ApiError)) throw error;
    });
  const now = Date.now();

  await Promise.all([
    load(
      { fail: (error) => alertsFailed(alertsPlace, error) },
      openAlerts({ signal }),
      (alerts) => drawAlerts(alertsPlace, alerts || [], now),
    ),
    load(
      { fail: (error) => { cards.total.fail(error); errorRate.fail(error); } },
      api.get("/api/histogram", { ...range, buckets: BUCKETS }, options),
      (data) => {
        const total = sumCounts(data.buckets);
        cards.total.show(total, `${number(sumCounts(data.buckets, ERROR_LEVELS))} errors`);
        drawErrorRate(errorRate, data, rangeText);
      },
    ),
    load(
      { fail: (error) => { cards.errors.fail(error); cards.warnings.fail(error); } },
      api.get("/api/histogram", { since: "1h", buckets: BUCKETS }, options),
      (data) => {
        const total = sumCounts(data.buckets);
        const errors = sumCounts(data.buckets, ERROR_LEVELS);
        const warnings = sumCounts(data.buckets, ["WARN"]);
        cards.errors.show(errors, total ? `${percent(errors / total)} of ${number(total)} logs` : "no logs");
        cards.warnings.show(warnings, total ? `${percent(warnings / total)} of ${number(total)} logs` : "no logs");
      },
    ),
    load(
      { fail: (error) => { cards.services.fail(error); services.fail(error); } },
      api.get("/api/services", undefined, options),
      (list) => {
        const silent = silentServices(list, now);
        cards.services.show(list.length, silent.size
          ? `${silent.size} gone silent` : list.length ? "all logging" : "none yet");
        drawServices(services, list, silent, now, explore);
      },
    ),
    load(
      errorTypes,
      api.get("/api/facets", { ...range, fields: "error_type", top: TOP }, options),
      (data) => drawErrorTypes(errorTypes, data.error_type || [], explore),
    ),
    load(
      endpoints,
      api.get("/api/endpoints", { ...range, top: TOP }, options),
      (data) => drawEndpoints(endpoints, data.endpoints || [], explore),
    ),
  ]);
  return () => controller.abort();
}

function panelError(error) {
  const reason = error && error.message ? error.message : String(error);
  return el("div", { className: "error-banner card-error", testid: "card-error", role: "alert" },
    el("span", {}, `could not load: ${reason}`));
}

function card(testid, label, tone = "") {
  const value = el("div", { className: "card-value", testid: "card-value" }, "…");
  const note = el("div", { className: "card-note" });
  const element = el("section", { className: "overview-card", testid },
    el("div", { className: "card-label" }, label), value, note);
  return {
    element,
    show(n, text = "") {
      value.textContent = number(n);
      value.dataset.value = String(n);
      note.textContent = text;
      if (tone && n > 0) element.classList.add(tone);
    },
    fail(error) {
      value.textContent = "–";
      note.replaceChildren(panelError(error));
    },
  };
}

function panel(testid, title, note) {
  const body = el("div", {}, el("p", { className: "empty" }, "loading…"));
  const element = el("section", { className: "overview-panel", testid },
    el("h2", {}, title, el("span", { className: "muted" }, note)), body);
  return {
    element,
    body,
    fill(...children) {
      body.replaceChildren(...children);
    },
    fail(error) {
      body.replaceChildren(panelError(error));
    },
  };
}

function drawErrorRate(target, data, rangeText) {
  const buckets = data.buckets || [];
  const points = buckets.map((bucket) => {
    const total = sumCounts([bucket]);
    return { t: bucket.t, value: total ? sumCounts([bucket], ERROR_LEVELS) / total : 0 };
  });
  const errors = sumCounts(buckets, ERROR_LEVELS);
  const total = sumCounts(buckets);
  const peak = Math.max(0, ...points.map((p) => p.value));
  target.fill(
    el("div", { className: "rate-note" },
      `${number(errors)} of ${number(total)} logs, ${rangeText}: `
      + `${percent(total ? errors / total : 0)} · peak ${percent(peak)} · `
      + `a point per ${interval(data.interval_s || 0)} (UTC)`),
    lineChart({
      points,
      format: percent,
      className: "error-rate",
      label: "share of ERROR and FATAL logs over time",
    }),
  );
}

function bars(rows) {
  const top = Math.max(1, ...rows.map((row) => row.count));
  return el("div", { className: "overview-bars" },
    rows.map((row) => {
      const fill = el("div", { className: "fill" });
      fill.style.width = `${Math.max(2, (row.count / top) * 100)}%`;
      return [
        row.link,
        el("span", { className: "count" }, number(row.count)),
        el("div", { className: "track" }, fill),
      ];
    }));
}

function drawErrorTypes(target, values, explore) {
  if (!values.length) {
    target.fill(el("p", { className: "empty" }, "no error type logged in this range"));
    return;
  }
  target.fill(bars(values.map(({ value, count }) => {
    const link = explore({ error_type: value }, value, "overview-error-type");
    link.dataset.value = value;
    return { count, link };
  })));
}

// A panel's table: a heading per column (its name, or [name, "num"] for a column of numbers)
// over `rows` (<tr> elements), or the sentence `empty` when there is no row.
function fillTable(target, columns, rows, empty) {
  if (!rows.length) {
    target.fill(el("p", { className: "empty" }, empty));
    return;
  }
  const headings = columns.map((column) => {
    const [name, className] = Array.isArray(column) ? column : [column];
    return el("th", { scope: "col", className }, name);
  });
  target.fill(el("table", { className: "overview-table" },
    el("thead", {}, el("tr", {}, headings)),
    el("tbody", {}, rows)));
}

function drawEndpoints(target, rows, explore) {
  const columns = ["endpoint", ["requests", "num"], ["p50", "num"], ["p95", "num"], ["max", "num"],
    ["errors", "num"]];
  fillTable(target, columns, rows.map((row) => el("tr", {
    testid: "overview-endpoint", dataset: { path: row.path, method: row.method || "" },
  },
  el("td", { className: "path" }, explore(
    row.method ? { path: row.path, method: row.method } : { path: row.path },
    row.method ? `${row.method} ${row.path}` : row.path,
  )),
  el("td", { className: "num" }, number(row.count)),
  el("td", { className: "num" }, milliseconds(row.p50_ms)),
  el("td", { className: "num", testid: "endpoint-p95" }, milliseconds(row.p95_ms)),
  el("td", { className: "num" }, milliseconds(row.max_ms)),
  el("td", { className: `num${row.errors ? " errors-some" : ""}` }, number(row.errors)),
  )), "no request logged a duration_ms in this range");
}

// The open alerts, newest first: rule, key (the service, or the method and path), summary and
// when each opened; nothing when there is none.
function drawAlerts(place, alerts, now) {
  if (!alerts.length) {
    place.replaceChildren();
    return;
  }
  const target = panel("overview-alerts", "Open alerts", `${alerts.length} open`);
  target.element.classList.add("overview-alerts");
  fillTable(target, ["rule", "key", "summary", "opened"], alerts.map((alert) => el("tr", {
    testid: "overview-alert",
    dataset: { id: alert.id, rule: alert.rule, key: alert.key },
  },
  el("td", {}, el("span", { className: `severity severity-${alert.severity}` }, alert.severity),
    " ", alert.rule),
  el("td", { className: "path" }, alert.key),
  el("td", {}, alert.summary),
  el("td", { className: "when", title: `${formatTime(alert.opened_at)} UTC` },
    `${formatTime(alert.opened_at).slice(0, 16)} UTC `,
    el("span", { className: "muted" }, `(${ago(alert.opened_at, now)})`)),
  )), "");
  place.replaceChildren(target.element);
}

function alertsFailed(place, error) {
  const failed = panel("overview-alerts", "Open alerts", "");
  failed.fail(error);
  place.replaceChildren(failed.element);
}

function drawServices(target, list, silent, now, explore) {
  const columns = ["service", ["logs", "num"], "last log", ["errors 1 h", "num"]];
  fillTable(target, columns, list.map((row) => {
    const quiet = silent.has(row.service);
    return el("tr", {
      className: quiet ? "silent" : "",
      testid: "overview-service",
      dataset: { service: row.service, silent: quiet ? "true" : undefined },
      title: quiet ? `${row.service} has not logged for over 15 minutes` : undefined,
    },
    el("td", {}, explore({ service: [row.service] }, row.service, "overview-service-link"),
      quiet ? el("span", { className: "silent-badge" }, "silent") : null),
    el("td", { className: "num" }, number(row.count)),
    el("td", { className: "when", title: `${formatTime(row.last_seen)} UTC` },
      ago(row.last_seen, now)),
    el("td", { className: `num${row.errors_1h ? " errors-some" : ""}` }, number(row.errors_1h)),
    );
  }), "no service has logged yet");
}
