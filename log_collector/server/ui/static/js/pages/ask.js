// Ask: a question in plain language (English or Korean) answered by POST /api/ask/stream,
// each part shown as it arrives: the interpretation (as chips), the answer, a chart for a
// series or a count per label, the rows and the SQL (as text), and "open in Explore" with the
// interpretation as Explore's filters. A clarification's options are buttons; choosing one
// sends the same question with the option's value in the same conversation. A server without
// the stream (404, 405) is asked through POST /api/ask, the whole answer at once.
//
// The URL holds the conversation id (`c`) and the last question (`q`), like every page's state:
// a reload, a shared link or back / forward asks that question again in that conversation
// (the server keeps a conversation 30 minutes; past that it starts a new one, whose id
// replaces `c`). The earlier turns are not kept: their answers hold rows of the store, which
// stay out of the URL and of the browser's storage.
import { el, formatTime } from "../dom.js";
import { ApiError } from "../api.js";
import { barChart, lineChart } from "../chart.js";
import { emptyFilters, toUrl, withChanges } from "../state.js";

const STREAM_PATH = "/api/ask/stream";
const ASK_PATH = "/api/ask";
// Questions the builtin engine answers, offered while the conversation is empty.
export const EXAMPLES = [
  "errors in the last hour",
  "top 5 error types today",
  "slowest 5 endpoints",
  "지난 1시간 에러",
];
// The interpretation's fields shown as chips, in this order (the time range is one chip).
const CHIP_FIELDS = [
  "intent", "service", "level", "error_type", "path", "user_id", "trace_id", "bucket_s",
  "top_n", "compare",
];
// The interpretation's fields that are Explore's filters of the same name.
const EXPLORE_FIELDS = ["since", "until", "error_type", "path", "user_id", "trace_id"];

// Explore's filters for `interp` (the answer's interpretation): its service, levels, time
// range and the fields Explore filters on.
export function exploreFilters(interp) {
  const filters = emptyFilters();
  if (interp.service) filters.service = [interp.service];
  if (Array.isArray(interp.level) && interp.level.length) filters.level = [...interp.level];
  for (const name of EXPLORE_FIELDS) {
    if (interp[name] !== null && interp[name] !== undefined && interp[name] !== "") {
      filters[name] = String(interp[name]);
    }
  }
  return filters;
}

function exploreState(interp) {
  return {
    page: "explore", trace_id: null, filters: exploreFilters(interp), columns: [], detail: null,
    extra: {},
  };
}

// ("2026-12-05T11:08:55.3+00:00", "2026-12-05T12:08:55.3+00:00")
//   -> "2026-12-05 11:08:55 – 12:08:55 UTC" (the day once when both are on the same day)
function timeRange(since, until) {
  const a = since ? formatTime(since).slice(0, 19) : "";
  const b = until ? formatTime(until).slice(0, 19) : "";
  if (a && b) return `${a} – ${a.slice(0, 10) === b.slice(0, 10) ? b.slice(11) : b} UTC`;
  if (a) return `since ${a} UTC`;
  return `until ${b} UTC`;
}

function cellText(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function isNumber(value) {
  return typeof value === "number" && Number.isFinite(value);
}

function reasonOf(error) {
  return error && error.message ? error.message : String(error);
}

export async function render(root, ctx) {
  const { api } = ctx;
  const controller = new AbortController();
  const signal = controller.signal;
  // What the page shows: the conversation and the question its URL names.
  let conversationId = ctx.state.extra.c || null;
  let shownQuestion = ctx.state.filters.q || "";
  let streaming = true;
  let busy = false;

  const turns = el("ol", { className: "ask-turns", testid: "ask-turns", "aria-live": "polite" });
  const input = el("input", {
    type: "text",
    name: "question",
    testid: "ask-input",
    className: "ask-input",
    placeholder: "a question, e.g. errors in the last hour",
    "aria-label": "question",
    autocomplete: "off",
  });
  const submit = el("button", {
    type: "submit", className: "primary", testid: "ask-submit",
  }, "ask");
  const examples = el("p", { className: "ask-examples muted", testid: "ask-examples" },
    "Try: ",
    EXAMPLES.map((example) => el("button", {
      type: "button",
      className: "link",
      testid: "ask-example",
      onclick: () => ask({ question: example }, example),
    }, example)));
  const form = el("form", {
    className: "ask-form",
    onsubmit: (event) => {
      event.preventDefault();
      const question = input.value.trim();
      if (!question || busy) return;
      input.value = "";
      ask({ question }, question);
    },
  }, input, submit);
  const newConversation = el("button", {
    type: "button",
    testid: "ask-new",
    title: "start a new conversation: the next question is not a follow-up",
    onclick: () => {
      conversationId = null;
      shownQuestion = "";
      turns.replaceChildren();
      examples.hidden = false;
      ctx.navigate(withChanges(ctx.state, { filters: { q: null }, extra: { c: null } }));
      input.focus();
    },
  }, "new conversation");
  root.append(
    el("div", { className: "ask-head" },
      el("h1", {}, "Ask"),
      el("span", { className: "muted" },
        "a question about the logs, in English or Korean; follow-ups narrow the last answer"),
      el("span", { className: "spacer" }),
      newConversation),
    turns,
    examples,
    form,
  );

  // The URL names the conversation and its last question: a new question is a new history
  // entry, a new id for the same question (a conversation the server no longer had) is not.
  const remember = (question, id) => {
    const changed = question !== shownQuestion;
    shownQuestion = question;
    conversationId = id;
    ctx.navigate(withChanges(ctx.state, { filters: { q: question }, extra: { c: id } }),
      { replace: !changed });
  };

  // Asks `body` (the question, and a clarification's choice), in the conversation, as a new
  // turn headed `heading`; `urlQuestion` is the question the URL keeps for it.
  async function ask(body, heading, urlQuestion = body.question) {
    if (busy) return;
    busy = true;
    submit.disabled = true;
    examples.hidden = true;
    const turn = askTurn(heading, (option) => {
      if (busy) return false;
      ask({ question: urlQuestion, choice: option.value }, `${urlQuestion} → ${option.label}`,
        urlQuestion);
      return true;
    }, ctx.navigate);
    turns.append(turn.element);
    turn.element.scrollIntoView({ block: "nearest" });
    const request = conversationId ? { ...body, conversation_id: conversationId } : body;
    const onPart = (type, data) => {
      if (type === "interpretation" && data.conversation_id) {
        remember(urlQuestion, data.conversation_id);
      }
      turn.show(type, data);
    };
    try {
      if (streaming) {
        try {
          await api.postStream(STREAM_PATH, request,
            (event) => onPart(event.type, event.data), { signal });
        } catch (error) {
          if (!(error instanceof ApiError) || ![404, 405].includes(error.status)) throw error;
          // No stream on this server: ask the plain endpoint, now and for the next questions.
          streaming = false;
        }
      }
      if (!streaming) {
        const answer = await api.post(ASK_PATH, request, { signal, quiet: true });
        for (const [type, data] of partsOf(answer)) onPart(type, data);
      }
    } catch (error) {
      if (signal.aborted || error.name === "AbortError") return;
      // A refused key has brought up the key prompt; any other failure is this turn's.
      if (error instanceof ApiError && (error.status === 401 || error.status === 403)) return;
      turn.fail(reasonOf(error));
      if (!(error instanceof ApiError)) throw error;
    } finally {
      turn.finish();
      busy = false;
      submit.disabled = false;
    }
  }

  if (shownQuestion) {
    // The question the URL names, asked again (a reload, a shared link, back / forward).
    ask({ question: shownQuestion }, shownQuestion);
  } else {
    input.focus();
  }

  const cleanup = () => controller.abort();
  // The page changing its own URL (a question answered) keeps the page; any other URL of
  // the Ask page (back to an earlier question) renders it anew, which asks that question.
  cleanup.update = (next) => {
    const same = next.page === "ask" && (next.filters.q || "") === shownQuestion
      && (next.extra.c || null) === conversationId;
    if (same) ctx.state = next;
    return same;
  };
  return cleanup;
}

// POST /api/ask's whole answer as the stream's parts, in the stream's order.
function partsOf(answer) {
  const parts = [["interpretation", answer]];
  if (answer.clarification) {
    parts.push(["clarification", answer]);
  } else {
    if (answer.sql !== null && answer.sql !== undefined) {
      parts.push(["sql", answer], ["rows", answer]);
    }
    parts.push(["answer", answer]);
  }
  return parts;
}

// One turn of the conversation: the question, then a place for each part of its answer,
// filled by show(type, data) as the parts arrive. onChoose(option): a clarification's option
// was clicked, true if it was sent (not while another question is in flight); navigate: the
// page's, for "open in Explore".
function askTurn(question, onChoose, navigate) {
  const status = el("span", { className: "ask-status muted", testid: "ask-status" }, "thinking…");
  const interpretation = el("div", {
    className: "ask-interpretation", testid: "ask-interpretation", hidden: true,
  });
  const answer = el("p", { className: "ask-answer", testid: "ask-answer", hidden: true });
  const options = el("div", { className: "ask-options", role: "group", hidden: true });
  const chart = el("div", { className: "ask-chart", testid: "ask-chart", hidden: true });
  const rows = el("div", { className: "ask-rows-wrap", hidden: true });
  const sql = el("div", { className: "ask-sql-wrap", hidden: true });
  const error = el("div", {
    className: "error-banner ask-error", testid: "ask-error", role: "alert", hidden: true,
  });
  const footer = el("div", { className: "ask-footer muted" }, status);
  const element = el("li", { className: "ask-turn", testid: "ask-turn", "aria-busy": "true" },
    el("div", { className: "ask-question", testid: "ask-question" }, question),
    el("div", { className: "ask-reply" },
      interpretation, answer, options, error, chart, rows, sql, footer));
  // The parts so far: the chart needs the rows, which come before it.
  let interp = null;
  let columns = [];
  let values = [];
  const notes = [];
  const note = (text) => {
    notes.push(text);
    status.textContent = notes.join(" · ");
  };

  const parts = {
    interpretation(data) {
      interp = data.interpretation || null;
      if (!interp) return;
      interpretation.replaceChildren(...chips(interp));
      interpretation.hidden = false;
    },
    clarification(data) {
      const asked = data.clarification || {};
      answer.textContent = asked.question || data.answer || "";
      answer.hidden = false;
      const buttons = (asked.options || []).map((option) => {
        const button = el("button", {
          type: "button",
          className: "ask-option",
          testid: "ask-option",
          "aria-pressed": "false",
          dataset: { value: JSON.stringify(option.value) },
          onclick: () => {
            if (!onChoose(option)) return;
            for (const other of buttons) other.disabled = true;
            button.setAttribute("aria-pressed", "true");
          },
        }, String(option.label));
        return button;
      });
      options.replaceChildren(...buttons);
      options.hidden = false;
      if (data.elapsed_ms !== undefined) note(`${data.elapsed_ms} ms`);
    },
    sql(data) {
      if (data.sql === null || data.sql === undefined) {
        if (data.fallback) note(data.fallback);
        return;
      }
      sql.replaceChildren(
        el("div", { className: "ask-label" }, `SQL by ${data.engine || "builtin"}`),
        el("pre", { className: "ask-sql", testid: "ask-sql" }, data.sql));
      sql.hidden = false;
      if (data.fallback) note(`fell back to builtin: ${data.fallback}`);
      if (data.cached) note("cached");
    },
    rows(data) {
      columns = data.columns || [];
      values = data.rows || [];
      rows.replaceChildren(rowsTable(columns, values, Boolean(data.truncated)));
      rows.hidden = false;
    },
    answer(data) {
      answer.textContent = data.answer || "";
      answer.hidden = !data.answer;
      if (data.chart && values.length) {
        const drawn = chartOf(data.chart, columns, values);
        if (drawn) {
          chart.replaceChildren(drawn);
          chart.dataset.kind = data.chart.kind;
          chart.hidden = false;
        }
      }
      if (data.elapsed_ms !== undefined) note(`${data.elapsed_ms} ms`);
      if (interp && interp.intent !== "unknown") footer.append(openInExplore(interp, navigate));
    },
    error(data) {
      fail(data.reason || data.error || "the question failed");
    },
  };

  function fail(message) {
    error.replaceChildren(el("span", {}, message));
    error.hidden = false;
  }

  return {
    element,
    show(type, data) {
      const part = parts[type];
      if (part) part(data || {});
    },
    fail,
    finish() {
      element.setAttribute("aria-busy", "false");
      if (notes.length === 0) status.textContent = "";
    },
  };
}

function chips(interp) {
  const shown = [];
  for (const field of CHIP_FIELDS) {
    const value = interp[field];
    if (value === null || value === undefined || value === "") continue;
    if (Array.isArray(value) && value.length === 0) continue;
    const text = Array.isArray(value) ? value.join(", ") : String(value);
    shown.push(el("span", { className: "chip ask-chip", dataset: { field } },
      el("span", { className: "muted" }, `${field} `), text));
    if (field === "service") shown.push(rangeChip(interp));
  }
  if (!interp.service) shown.splice(1, 0, rangeChip(interp));
  return shown.filter(Boolean);
}

function rangeChip(interp) {
  if (!interp.since && !interp.until) return null;
  return el("span", { className: "chip ask-chip", dataset: { field: "time" } },
    el("span", { className: "muted" }, "time "), timeRange(interp.since, interp.until));
}

function rowsTable(columns, rows, truncated) {
  const table = el("table", { className: "ask-rows", testid: "ask-rows" },
    el("thead", {}, el("tr", {}, columns.map((name) => el("th", { scope: "col" }, name)))),
    el("tbody", {}, rows.map((row) => el("tr", { testid: "ask-row" },
      row.map((value) => el("td", {
        className: isNumber(value) ? "num" : "",
      }, cellText(value)))))));
  const count = `${rows.length} row${rows.length === 1 ? "" : "s"}`;
  return el("div", {},
    el("div", { className: "ask-label", testid: "ask-rows-count" },
      truncated ? `${count}, truncated: the query has more` : count),
    rows.length ? table : el("p", { className: "muted" }, "no rows"));
}

// The answer's chart hint {kind, x, y} drawn from its rows: a time series as a line, a count
// per label as bars; null when the columns it names are not in the rows.
function chartOf(hint, columns, rows) {
  const x = columns.indexOf(hint.x);
  const y = columns.indexOf(hint.y);
  if (x < 0 || y < 0) return null;
  const label = `${hint.y} by ${hint.x}`;
  if (hint.kind === "timeseries") {
    const points = rows
      .filter((row) => !Number.isNaN(Date.parse(row[x])) && isNumber(Number(row[y])))
      .map((row) => ({ t: String(row[x]), value: Number(row[y]) }));
    if (!points.length) return null;
    const format = (n) => String(Number(n.toFixed(2)));
    return lineChart({ points, format, className: "ask-line", label });
  }
  const items = rows
    .filter((row) => isNumber(Number(row[y])))
    .map((row) => ({ label: cellText(row[x]), value: Number(row[y]) }));
  if (!items.length) return null;
  return barChart({ items, label });
}

function openInExplore(interp, navigate) {
  const target = exploreState(interp);
  return el("a", {
    href: toUrl(target),
    testid: "ask-open-explore",
    className: "ask-open-explore",
    title: "the logs behind this answer, in Explore",
    onclick: (event) => {
      if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
      event.preventDefault();
      navigate(target);
    },
  }, "open in Explore");
}
