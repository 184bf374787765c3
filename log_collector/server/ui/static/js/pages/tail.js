// Live tail: the newest lines, then every new one as the server stores it (/api/tail, SSE).
// Scrolling up pauses (as does the pause button): lines arriving meanwhile are held and
// counted, and shown on resume. At most MAX_LINES stay in the page.
import { el, formatTime } from "../dom.js";
import { isAbort } from "../api.js";
import { filterBar } from "../filters.js";
import { filterParams, withChanges } from "../state.js";

const MAX_LINES = 2000;
const FIRST_LINES = 100;
// How close to the bottom (px) still counts as "at the bottom": following the stream.
const BOTTOM_SLACK = 24;

export async function render(root, ctx) {
  const { state, navigate, api } = ctx;
  const controller = new AbortController();
  // The tail shows what arrives from now on: a time range does not apply to it.
  const params = filterParams({ ...state.filters, since: null, until: null });

  let paused = false;
  let pausedByScroll = false;
  let held = [];
  let pending = 0;

  const status = el("span", { className: "tail-state", testid: "tail-status", dataset: { state: "connecting" } }, "connecting…");
  const pendingCount = el("span", { className: "tail-pending", testid: "tail-pending" }, "0");
  const pendingNote = el("span", { className: "muted", hidden: true }, pendingCount, " new lines held");
  const pauseButton = el("button", { type: "button", testid: "tail-pause", onclick: () => pause(false) }, "pause");
  const resumeButton = el("button", { type: "button", className: "primary", testid: "tail-resume", hidden: true, onclick: () => resume() }, "resume");
  const lines = el("div", { className: "tail-lines", testid: "tail-lines", role: "log", "aria-live": "off" });

  const atBottom = () => lines.scrollHeight - lines.scrollTop - lines.clientHeight <= BOTTOM_SLACK;
  const toBottom = () => {
    lines.scrollTop = lines.scrollHeight;
  };

  const line = (record) =>
    el("div", {
      className: "tail-line",
      testid: "tail-line",
      dataset: { id: record.id },
      title: "open in Explore",
      onclick: () => navigate(withChanges(state, { page: "explore", detail: String(record.id) })),
    },
    el("span", { className: "time" }, formatTime(record.created_at)),
    el("span", { className: `level level-${record.level}` }, record.level),
    el("span", { className: "service" }, record.service),
    el("span", { className: "message" }, record.message));

  const show = (records) => {
    lines.append(...records.map(line));
    while (lines.childElementCount > MAX_LINES) lines.firstElementChild.remove();
    toBottom();
  };

  function updatePending() {
    pendingCount.textContent = String(pending);
    pendingNote.hidden = !paused;
  }

  function pause(byScroll) {
    if (paused) return;
    paused = true;
    pausedByScroll = byScroll;
    pauseButton.hidden = true;
    resumeButton.hidden = false;
    updatePending();
  }

  function resume() {
    paused = false;
    pausedByScroll = false;
    const records = held;
    held = [];
    pending = 0;
    pauseButton.hidden = false;
    resumeButton.hidden = true;
    updatePending();
    show(records);
  }

  lines.addEventListener("scroll", () => {
    if (!paused && !atBottom()) pause(true);
    else if (paused && pausedByScroll && atBottom()) resume();
  });

  root.append(
    filterBar(ctx, { timeRange: false }),
    el("div", { className: "tail-status" }, status, pauseButton, resumeButton, pendingNote,
      el("button", { type: "button", className: "link", onclick: () => lines.replaceChildren() }, "clear")),
    lines,
  );

  // The newest lines first (oldest at the top), then the stream after the newest of them.
  let after = null;
  try {
    const first = await api.get("/api/logs", { ...params, limit: FIRST_LINES }, { signal: controller.signal });
    const records = first.logs.slice().reverse();
    show(records);
    after = records.reduce((max, r) => Math.max(max, r.id), 0) || null;
  } catch (error) {
    if (!isAbort(error)) throw error;
    return () => controller.abort();
  }

  const onEvent = (event) => {
    if (event.type !== "log" || typeof event.data !== "object") return;
    if (paused) {
      pending += 1;
      held.push(event.data);
      if (held.length > MAX_LINES) held = held.slice(-MAX_LINES);
      updatePending();
    } else {
      show([event.data]);
    }
  };
  const onStatus = (name) => {
    status.dataset.state = name;
    status.className = `tail-state ${name}`;
    status.textContent = { live: "live", reconnecting: "reconnecting…", stopped: "stopped" }[name] || name;
  };
  api.stream("/api/tail", params, onEvent, controller.signal, onStatus, after);
  return () => controller.abort();
}
