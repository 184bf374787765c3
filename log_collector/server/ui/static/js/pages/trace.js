// Trace: every line of one trace (/api/traces/<id>), oldest first, grouped by service in the
// order the services first log, under a timeline with one lane per service: a bar from its
// first line to its last, a tick per line, and the durations. A line opens its fields below it.
import { el, formatTime, onKeys, svg } from "../dom.js";
import { ApiError } from "../api.js";
import { fluidSvg } from "../chart.js";
import { emptyFilters, toUrl } from "../state.js";

// In CSS pixels (the timeline is drawn at its element's width, see fluidSvg).
const LABEL = 170;
const RIGHT = 90;
const LANE = 24;
const AXIS = 22;
// Fields shown on the line itself or in their own block, not repeated in the field list.
const OWN_BLOCK = new Set(["message", "metadata", "stack_trace"]);

// 0.4 -> "0.4 ms", 1234.5 -> "1.235 s", 75000 -> "1 min 15 s"
export function formatDuration(ms) {
  if (!Number.isFinite(ms)) return "";
  if (ms < 1000) return `${Number(ms.toFixed(ms < 10 ? 2 : 1))} ms`;
  if (ms < 60000) return `${Number((ms / 1000).toFixed(3))} s`;
  const minutes = Math.floor(ms / 60000);
  return `${minutes} min ${Math.round((ms % 60000) / 1000)} s`;
}

// Microseconds since the epoch of an ISO time with up to 6 decimals ("...:05.123456+00:00"),
// which Date.parse would cut to milliseconds.
function micros(iso) {
  const text = String(iso);
  const match = /\.(\d+)/.exec(text);
  const whole = Date.parse(text.replace(/\.\d+/, ""));
  const fraction = match ? Number(match[1].slice(0, 6).padEnd(6, "0")) : 0;
  return whole * 1000 + fraction;
}

function explore(filters, detail = null) {
  return { page: "explore", trace_id: null, filters: { ...emptyFilters(), ...filters },
    columns: [], detail, extra: {} };
}

function link(ctx, state, testid, ...children) {
  return el("a", {
    href: toUrl(state),
    testid,
    onclick: (event) => {
      if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
      event.preventDefault();
      ctx.navigate(state);
    },
  }, ...children);
}

export async function render(root, ctx) {
  const { state, api } = ctx;
  const controller = new AbortController();
  const traceId = state.trace_id || state.filters.trace_id || "";
  if (!traceId) {
    root.append(missing("No trace id in the address: open a trace from a log line's "
      + "\"show trace\" in Explore, or go to /ui/trace/<trace id>.", ""));
    return () => controller.abort();
  }
  root.append(el("p", { className: "muted", testid: "trace-loading" }, "loading trace…"));
  let data;
  try {
    // Quiet: the page says what went wrong itself, in its place of the trace.
    data = await api.get(`/api/traces/${encodeURIComponent(traceId)}`, undefined,
      { signal: controller.signal, quiet: true });
  } catch (error) {
    if (!(error instanceof ApiError) && error.name !== "AbortError") throw error;
    if (error.status === 404) {
      // An unknown trace is an answer, not a failure.
      root.replaceChildren(missing("No such trace: no stored log carries this trace id.", traceId));
    } else if (error.name === "AbortError" || error.shown) {
      // Left, or the key was refused (the prompt took the page).
      root.replaceChildren();
    } else {
      root.replaceChildren(el("p", { className: "page-error", testid: "trace-error", role: "alert" },
        `This trace could not be loaded: ${error.message}`));
    }
    return () => controller.abort();
  }
  root.replaceChildren(...traceView(ctx, data));
  return () => controller.abort();
}

function missing(text, traceId) {
  return el("section", { className: "trace-missing", testid: "trace-missing", role: "status" },
    el("h1", {}, traceId ? "No such trace" : "No trace chosen"),
    traceId ? el("p", {}, "Trace id ", el("code", {}, traceId)) : null,
    el("p", {}, text));
}

function traceView(ctx, data) {
  const logs = data.logs || [];
  const start = micros(logs.length ? logs[0].created_at : data.started_at);
  const lines = logs.map((record, i) => ({
    record,
    seq: i + 1,
    offsetMs: (micros(record.created_at) - start) / 1000,
  }));
  const order = data.services && data.services.length
    ? data.services
    : [...new Set(logs.map((r) => r.service))];
  const byService = new Map(order.map((name) => [name, []]));
  for (const line of lines) {
    if (!byService.has(line.record.service)) byService.set(line.record.service, []);
    byService.get(line.record.service).push(line);
  }
  const total = Number(data.duration_ms) || 0;
  const errors = logs.filter((r) => r.level === "ERROR" || r.level === "FATAL").length;

  const head = el("div", { className: "trace-head" },
    el("h1", {}, "Trace ", el("code", { testid: "trace-id" }, data.trace_id)),
    el("span", { className: "trace-summary", testid: "trace-summary" },
      el("strong", {}, String(logs.length)), logs.length === 1 ? " line, " : " lines, ",
      el("strong", {}, String(byService.size)), byService.size === 1 ? " service, " : " services, ",
      el("strong", {}, formatDuration(total)), " from ",
      formatTime(data.started_at), " UTC",
      errors ? el("span", {}, `, ${errors} error${errors === 1 ? "" : "s"}`) : null),
    el("span", { className: "spacer" }),
    link(ctx, explore({ trace_id: data.trace_id, since: data.started_at }), "trace-explore",
      "these lines in Explore"),
  );
  const parts = [head];
  if (data.truncated) {
    parts.push(el("p", { className: "page-error", testid: "trace-truncated" },
      `This trace has more lines than the ${logs.length} shown.`));
  }
  parts.push(
    el("section", { className: "trace-panel" }, timeline(byService, total)),
    el("div", { testid: "trace-view" },
      [...byService].map(([service, serviceLines]) => serviceGroup(ctx, service, serviceLines))),
  );
  return parts;
}

function shortName(name, max = 24) {
  return name.length > max ? `${name.slice(0, max - 1)}…` : name;
}

// One lane per service: its span as a bar, a tick per line coloured by level, the span's
// length at the right; the axis on top runs from the first line (0) to the last.
function timeline(byService, totalMs) {
  const lanes = [...byService];
  const height = AXIS + lanes.length * LANE + 4;
  const draw = (width) => {
    const plot = width - LABEL - RIGHT;
    const x = (ms) => LABEL + (totalMs > 0 ? (ms / totalMs) * plot : 0);
    const axis = [0, 0.25, 0.5, 0.75, 1].map((fraction) => {
      const at = LABEL + fraction * plot;
      return [
        svg("line", { x1: at, x2: at, y1: AXIS - 4, y2: height, className: "grid" }),
        svg("text", {
          x: at, y: 12, className: "axis",
          "text-anchor": fraction === 0 ? "start" : fraction === 1 ? "end" : "middle",
        }, fraction === 0 ? "0" : `+${formatDuration(totalMs * fraction)}`),
      ];
    });
    return [axis, lanes.map(([service, lines], i) => {
      const top = AXIS + i * LANE;
      const first = lines.length ? lines[0].offsetMs : 0;
      const last = lines.length ? lines[lines.length - 1].offsetMs : 0;
      const span = last - first;
      return svg("g", { className: "lane", dataset: { service } },
        svg("title", {}, `${service}: ${lines.length} lines over ${formatDuration(span)}`),
        svg("rect", { x: 0, y: top + 2, width, height: LANE - 4, className: "lane-bg" }),
        svg("text", { x: 8, y: top + LANE / 2 + 4, className: "lane-label" }, shortName(service)),
        svg("rect", {
          x: x(first), y: top + 6, width: Math.max(3, x(last) - x(first)), height: LANE - 12,
          rx: 2, className: "span-bar",
        }),
        lines.map((line) => svg("line", {
          x1: x(line.offsetMs), x2: x(line.offsetMs), y1: top + 4, y2: top + LANE - 4,
          className: `tick level-${line.record.level}`,
        }, svg("title", {}, `+${formatDuration(line.offsetMs)} ${line.record.level}`))),
        svg("text", {
          x: width - 6, y: top + LANE / 2 + 4, className: "lane-duration", "text-anchor": "end",
          testid: "trace-span",
        }, formatDuration(span)),
      );
    })];
  };
  return fluidSvg({
    className: "chart trace-timeline",
    testid: "trace-timeline",
    role: "img",
    "aria-label": `timeline of the trace: ${lanes.length} services over ${formatDuration(totalMs)}`,
  }, height, draw);
}

function serviceGroup(ctx, service, lines) {
  const first = lines.length ? lines[0].offsetMs : 0;
  const last = lines.length ? lines[lines.length - 1].offsetMs : 0;
  return el("section", {
    className: "trace-service", testid: "trace-service", dataset: { service },
  },
  el("h2", {},
    el("span", {}, service),
    el("span", { className: "muted" },
      `${lines.length} line${lines.length === 1 ? "" : "s"}, from +${formatDuration(first)}`
      + `, over ${formatDuration(last - first)}`)),
  lines.map((line) => traceLine(ctx, line)),
  );
}

function traceLine(ctx, { record, seq, offsetMs }) {
  let detail = null;
  const toggle = () => {
    if (detail) {
      detail.remove();
      detail = null;
      row.classList.remove("open");
      row.setAttribute("aria-expanded", "false");
      return;
    }
    detail = lineDetail(ctx, record);
    row.after(detail);
    row.classList.add("open");
    row.setAttribute("aria-expanded", "true");
  };
  const where = [record.method, record.path].filter(Boolean).join(" ");
  const row = el("div", {
    className: "trace-line",
    testid: "trace-line",
    dataset: { id: record.id, seq, level: record.level },
    role: "button",
    tabindex: "0",
    "aria-expanded": "false",
    title: formatTime(record.created_at),
    onclick: toggle,
    onkeydown: onKeys(["Enter", " "], toggle),
  },
  el("span", { className: "seq" }, `#${seq}`),
  el("span", { className: "offset" }, `+${formatDuration(offsetMs)}`),
  el("span", {}, el("span", { className: `badge level-${record.level}` }, record.level)),
  el("span", { className: "message" }, record.message),
  el("span", { className: "where" },
    where, record.duration_ms !== null && record.duration_ms !== undefined
      ? ` ${formatDuration(Number(record.duration_ms))}` : ""),
  );
  return row;
}

// A line's every field, its stack trace and its metadata as JSON, and a link to it in Explore.
function lineDetail(ctx, record) {
  const fields = Object.keys(record).filter((name) => !OWN_BLOCK.has(name));
  return el("div", { className: "trace-detail", testid: "detail" },
    el("h3", {}, "message"),
    el("pre", { testid: "detail-message" }, record.message),
    record.stack_trace ? [
      el("h3", {}, "stack trace"),
      el("pre", { testid: "detail-stack-trace" }, record.stack_trace),
    ] : null,
    record.metadata !== null && record.metadata !== undefined ? [
      el("h3", {}, "metadata"),
      el("pre", { testid: "detail-metadata" }, JSON.stringify(record.metadata, null, 2)),
    ] : null,
    el("h3", {}, "fields"),
    el("dl", { testid: "detail-fields" },
      fields.map((name) => {
        const value = record[name];
        return [el("dt", {}, name), el("dd", { dataset: { field: name } },
          value === null || value === undefined ? "" : String(value))];
      })),
    link(ctx, explore({ service: [record.service], since: record.created_at }, String(record.id)),
      "trace-open-in-explore", "open in Explore"),
  );
}
