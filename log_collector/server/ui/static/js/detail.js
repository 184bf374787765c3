// The detail panel of one log: every field, the message, the metadata as formatted JSON, the
// stack trace, copy buttons, the same service's lines around it, and a link to its trace.
// Every value is text (dom.js); the only link is the trace's, built from its id.
import { clear, copyText, el, formatTime, onKeys } from "./dom.js";
import { isAbort } from "./api.js";
import { emptyFilters, withChanges } from "./state.js";

const CONTEXT_LINES = 10;
// Fields of a record that are filters of the API, offered as "filter" in the panel.
const FILTERABLE = [
  "service", "level", "environment", "trace_id", "user_id", "session_id", "path", "method",
  "error_type", "function_name",
];

function copyButton(label, text, testid) {
  const button = el("button", {
    type: "button",
    className: "link",
    testid,
    onclick: async () => {
      const done = await copyText(text());
      button.textContent = done ? "copied" : "copy failed";
      setTimeout(() => {
        button.textContent = label;
      }, 1500);
    },
  }, label);
  return button;
}

// detailPanel(ctx, id, signal, addFilter) -> {element, loaded}: the panel of log `id`, which
// closes by navigating to ctx.state without `detail`; addFilter(field, value) applies a
// field's value as a filter. `loaded` settles once the log and its context are shown.
export function detailPanel(ctx, id, signal, addFilter) {
  const { state, navigate, api } = ctx;
  const close = () => navigate(withChanges(state, { detail: null }));
  const content = el("div", {}, el("p", { className: "muted" }, "loading…"));
  const element = el("aside", {
    className: "detail",
    testid: "detail",
    "aria-label": "log detail",
    tabindex: "-1",
    onkeydown: onKeys(["Escape"], close),
  },
  el("div", { className: "detail-head" },
    el("h2", {}, `log ${id}`),
    el("button", { type: "button", testid: "detail-close", onclick: close }, "close"),
  ),
  content,
  );

  const loaded = api.get(`/api/logs/${encodeURIComponent(id)}`, undefined, { signal })
    .then((record) => {
      content.replaceChildren(...detailBody(ctx, record, addFilter));
      return loadContext(api, record, signal, content.querySelector("[data-testid=detail-context]"),
        (other) => navigate(withChanges(state, { detail: String(other) })));
    })
    .catch((error) => {
      if (!isAbort(error)) throw error;
      clear(content).append(el("p", { className: "muted" }, "this log could not be loaded"));
    });
  return { element, loaded };
}

function detailBody(ctx, record, addFilter) {
  const skip = new Set(["message", "metadata", "stack_trace"]);
  const fields = Object.keys(record).filter((name) => !skip.has(name));
  const json = JSON.stringify(record, null, 2);
  const parts = [
    el("div", { className: "detail-actions" },
      el("span", { className: `badge level-${record.level}` }, record.level),
      ` ${formatTime(record.created_at)} `,
      copyButton("copy JSON", () => json, "copy-json"),
      record.trace_id
        ? el("a", {
          href: `/ui/trace/${encodeURIComponent(record.trace_id)}`,
          testid: "detail-show-trace",
          onclick: (event) => {
            event.preventDefault();
            ctx.navigate({
              page: "trace", trace_id: record.trace_id, filters: emptyFilters(),
              columns: [], detail: null, extra: {},
            });
          },
        }, "show trace")
        : null,
    ),
    el("h3", {}, "message", copyButton("copy", () => record.message, "copy-message")),
    el("pre", { testid: "detail-message" }, record.message),
  ];
  if (record.stack_trace) {
    parts.push(
      el("h3", {}, "stack trace", copyButton("copy", () => record.stack_trace, "copy-stack-trace")),
      el("pre", { testid: "detail-stack-trace" }, record.stack_trace),
    );
  }
  if (record.metadata !== null && record.metadata !== undefined) {
    const text = JSON.stringify(record.metadata, null, 2);
    parts.push(
      el("h3", {}, "metadata", copyButton("copy", () => text, "copy-metadata")),
      el("pre", { testid: "detail-metadata" }, text),
    );
  }
  parts.push(
    el("h3", {}, "fields"),
    el("dl", { testid: "detail-fields" },
      fields.map((name) => {
        const value = record[name];
        const text = value === null || value === undefined ? "" : String(value);
        return [
          el("dt", {}, name),
          el("dd", { dataset: { field: name } },
            value === null || value === undefined ? el("span", { className: "muted" }, "null") : text,
            FILTERABLE.includes(name) && text
              ? el("button", {
                type: "button",
                className: "link",
                title: `filter by ${name} = ${text}`,
                onclick: () => addFilter(name, text),
              }, " filter")
              : null),
        ];
      })),
    el("h3", {}, "lines around this one", el("span", { className: "muted" }, `same service, ±${CONTEXT_LINES}`)),
    el("div", { testid: "detail-context" }, el("p", { className: "muted" }, "loading…")),
  );
  return parts;
}

async function loadContext(api, record, signal, box, open) {
  if (!box) return;
  const data = await api.get(`/api/logs/${encodeURIComponent(record.id)}/context`, {
    before: CONTEXT_LINES, after: CONTEXT_LINES,
  }, { signal });
  const line = (other, current) =>
    el("div", {
      className: `context-line${current ? " current" : ""}`,
      testid: "context-line",
      dataset: { id: other.id },
      onclick: current ? undefined : () => open(other.id),
    },
    el("span", { className: "time" }, formatTime(other.created_at).slice(11)),
    el("span", { className: `level-${other.level}` }, other.level),
    el("span", {}, other.message));
  box.replaceChildren(
    ...data.before.map((other) => line(other, false)),
    line(data.line, true),
    ...data.after.map((other) => line(other, false)),
  );
}
