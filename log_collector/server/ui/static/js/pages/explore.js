// Explore: the filter bar, the volume histogram, the facets, the results table (more rows as
// one scrolls, with the cursor) and the detail panel of one row (URL parameter `detail`).
import { el, formatTime, onKeys } from "../dom.js";
import { detailPanel } from "../detail.js";
import { isAbort } from "../api.js";
import { histogram } from "../chart.js";
import { DEFAULT_SINCE, EXCLUDABLE, excludeChange, filterBar } from "../filters.js";
import { REPEATED_FILTERS, filterParams, toSearch, withChanges } from "../state.js";

const PAGE_SIZE = 100;
const HISTOGRAM_BUCKETS = 60;
const FACET_FIELDS = ["service", "level", "path", "error_type", "user_id"];
const FACET_TOP = 8;
// Columns one may add to the table (time, level, service and message are always shown).
const EXTRA_COLUMNS = [
  "environment", "path", "method", "duration_ms", "user_id", "session_id", "trace_id",
  "error_type", "function_name", "file_path", "service_version", "log_type", "action_type",
];

// The filters sent to the API: with no time range chosen, the last DEFAULT_SINCE.
export function queryFilters(filters) {
  const params = filterParams(filters);
  if (!params.since && !params.until) params.since = DEFAULT_SINCE;
  return params;
}

export async function render(root, ctx) {
  const { state, navigate, api } = ctx;
  const controller = new AbortController();
  const signal = controller.signal;
  const params = queryFilters(state.filters);
  const go = (changes) => navigate(withChanges(state, changes));
  const addFilter = (field, value) => {
    const current = state.filters[field];
    if (REPEATED_FILTERS.includes(field)) {
      const list = current || [];
      go({ filters: { [field]: list.includes(value) ? list : [...list, value] }, detail: null });
    } else {
      go({ filters: { [field]: value }, detail: null });
    }
  };

  const chartBox = el("div", { className: "histogram-box" });
  const facetBox = el("aside", { className: "facets", testid: "facets", "aria-label": "facets" });
  const results = resultsTable(ctx, signal);
  // The rows are what the person came for: their request goes first, the histogram's beside
  // it, and the facets and the service list (slower to count, less needed) once the rows are
  // shown, so they do not compete with them for the server's read connections.
  const rowsShown = results.load(params);
  const quiet = (promise) =>
    promise.catch((error) => {
      if (!isAbort(error)) throw error;
    });
  const histogramParams = { ...params, buckets: HISTOGRAM_BUCKETS };
  const histogramDone = quiet(
    api.get("/api/histogram", histogramParams, { signal }).then((data) => {
      const total = data.buckets.reduce(
        (sum, b) => sum + Object.values(b.counts).reduce((a, n) => a + n, 0), 0);
      results.setTotal(total);
      chartBox.replaceChildren(histogram({
        data,
        selectedLevels: state.filters.level,
        onBar: (since, until) => go({ filters: { since, until }, detail: null }),
        onSpan: (since, until) => go({ filters: { since, until }, detail: null }),
        onLegend: (level) => {
          const only = state.filters.level.length === 1 && state.filters.level[0] === level;
          go({ filters: { level: only ? [] : [level], min_level: null }, detail: null });
        },
      }));
    }),
  );
  root.append(
    filterBar(ctx, { servicesAfter: rowsShown }),
    chartBox,
    el("div", { className: "explore-body" }, facetBox, results.element),
  );

  // The detail panel has its own abort signal: opening another row replaces only the panel.
  let detail = null;
  let detailController = null;
  const openDetail = (id) => {
    if (detail) detail.element.remove();
    if (detailController) detailController.abort();
    detail = null;
    results.select(id);
    if (!id) return null;
    detailController = new AbortController();
    signal.addEventListener("abort", () => detailController.abort());
    detail = detailPanel(ctx, id, detailController.signal, addFilter);
    root.append(detail.element);
    return detail.loaded;
  };
  const detailLoaded = openDetail(state.detail);

  const facetParams = { ...params, fields: FACET_FIELDS.join(","), top: FACET_TOP };
  const facetsDone = quiet(rowsShown
    .then(() => api.get("/api/facets", facetParams, { signal }))
    .then((data) => facetBox.replaceChildren(...facetList(data, state, go, addFilter))));
  await Promise.all([histogramDone, facetsDone, rowsShown, detailLoaded]);
  const cleanup = () => {
    controller.abort();
    results.stop();
  };
  // Opening, changing or closing the detail panel changes only the URL's `detail`: the page
  // keeps its rows (and its scroll position, and the pages already loaded) and swaps the panel.
  cleanup.update = (next) => {
    if (!sameButDetail(ctx.state, next)) return false;
    ctx.state = next;
    openDetail(next.detail);
    return true;
  };
  return cleanup;
}

function sameButDetail(a, b) {
  return a.page === b.page && toSearch({ ...a, detail: null }) === toSearch({ ...b, detail: null });
}

function facetList(data, state, go, addFilter) {
  const blocks = [];
  for (const field of FACET_FIELDS) {
    const values = data[field] || [];
    blocks.push(el("section", { testid: `facet-${field}` },
      el("h3", {}, field),
      values.length === 0 ? el("p", { className: "muted" }, "none") : null,
      values.map(({ value, count }) =>
        el("div", { className: "facet-value", testid: "facet-value", dataset: { field, value } },
          el("button", {
            type: "button",
            className: `link facet-name${field === "level" ? ` level-${value}` : ""}`,
            title: `${field}: ${value}`,
            onclick: () => addFilter(field, value),
          }, value),
          el("span", { className: "count" }, String(count)),
          el("button", {
            type: "button",
            className: "facet-op",
            title: `only ${field} ${value}`,
            "aria-label": `include ${field} ${value}`,
            testid: "facet-include",
            onclick: () => addFilter(field, value),
          }, "+"),
          EXCLUDABLE.has(field)
            ? el("button", {
              type: "button",
              className: "facet-op",
              title: `all but ${field} ${value}`,
              "aria-label": `exclude ${field} ${value}`,
              testid: "facet-exclude",
              onclick: () => go({
                filters: excludeChange(state.filters, field, value),
                detail: null,
              }),
            }, "−")
            : null,
        )),
    ));
  }
  return blocks;
}

function cell(record, column) {
  const value = record[column];
  if (value === null || value === undefined) return el("td", { className: `col-${column}` });
  return el("td", { className: `col-${column}` }, String(value));
}

// The table and its paging: rows keyed by id (a row already shown is never added again), the
// next page asked when the sentinel below the table comes into view.
function resultsTable(ctx, signal) {
  const { state, navigate, api } = ctx;
  // ctx.state, not state, where a handler runs later: opening a row updates it (see render).
  const columns = state.columns.filter((c) => EXTRA_COLUMNS.includes(c));
  const seen = new Set();
  let cursor = null;
  let params = null;
  let loading = false;
  let finished = false;

  const count = el("span", { className: "muted", testid: "results-count" });
  const total = el("span", { className: "muted" });
  const body = el("tbody");
  const sentinel = el("div", { className: "sentinel", testid: "results-sentinel" }, "loading…");
  const chooser = el("details", { className: "menu columns-menu", testid: "columns" },
    el("summary", {}, "columns"),
    el("div", { className: "menu-body" },
      EXTRA_COLUMNS.map((column) => {
        const box = el("input", {
          type: "checkbox",
          checked: columns.includes(column),
          onchange: () => {
            const next = box.checked
              ? [...columns, column]
              : columns.filter((c) => c !== column);
            navigate(withChanges(ctx.state, {
              columns: EXTRA_COLUMNS.filter((c) => next.includes(c)),
            }));
          },
        });
        return el("label", { testid: `column-${column}` }, box, ` ${column}`);
      })),
  );
  const table = el("table", { className: "results" },
    el("thead", {}, el("tr", {},
      el("th", { scope: "col" }, "time (UTC)"),
      el("th", { scope: "col" }, "level"),
      el("th", { scope: "col" }, "service"),
      columns.map((column) => el("th", { scope: "col" }, column)),
      el("th", { scope: "col" }, "message"),
    )),
    body,
  );

  const row = (record) => {
    const open = () => navigate(withChanges(state, { detail: String(record.id) }));
    return el("tr", {
      className: `log-row${String(record.id) === ctx.state.detail ? " selected" : ""}`,
      testid: "log-row",
      dataset: { id: record.id, level: record.level, service: record.service, createdAt: record.created_at },
      tabindex: "0",
      onclick: open,
      onkeydown: onKeys(["Enter"], open),
    },
    el("td", { className: "time" }, formatTime(record.created_at)),
    el("td", {}, el("span", { className: `badge level-${record.level}` }, record.level)),
    el("td", { className: "service" }, record.service),
    columns.map((column) => cell(record, column)),
    el("td", { className: "message" }, record.message),
    );
  };

  async function next() {
    if (loading || finished || signal.aborted) return;
    loading = true;
    try {
      const page = await api.get("/api/logs", {
        ...params, limit: PAGE_SIZE, cursor: cursor || undefined,
      }, { signal });
      for (const record of page.logs) {
        if (seen.has(record.id)) continue;
        seen.add(record.id);
        body.append(row(record));
      }
      cursor = page.next_cursor;
      finished = !cursor;
      count.textContent = `${seen.size} shown`;
      sentinel.textContent = finished ? (seen.size ? "end of results" : "no logs match") : "loading…";
    } catch (error) {
      if (!isAbort(error)) throw error;
      finished = true;
      sentinel.textContent = "";
    } finally {
      loading = false;
    }
    // Still in view after this page (a tall window): the observer only reports changes, so
    // observe again to be told at once.
    if (!finished && observer) {
      observer.unobserve(sentinel);
      observer.observe(sentinel);
    }
  }

  let observer = null;
  const element = el("section", { className: "results-wrap", testid: "results" },
    el("div", { className: "results-head" }, count, total, el("span", { className: "spacer" }), chooser),
    table,
    sentinel,
  );
  return {
    element,
    select(id) {
      for (const tr of body.children) tr.classList.toggle("selected", tr.dataset.id === id);
    },
    setTotal(n) {
      total.textContent = `of ${n} in range`;
    },
    async load(initial) {
      params = initial;
      await next();
      if (!finished && !signal.aborted && "IntersectionObserver" in window) {
        observer = new IntersectionObserver((entries) => {
          if (entries.some((entry) => entry.isIntersecting)) next();
        }, { rootMargin: "200px" });
        observer.observe(sentinel);
      }
    },
    stop() {
      if (observer) observer.disconnect();
      observer = null;
    },
  };
}
