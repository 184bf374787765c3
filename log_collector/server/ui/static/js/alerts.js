// The open alerts (GET /api/alerts?status=open), for the badge every page's navigation shows
// and for the Overview's "Open alerts" panel. A server without alerts answers 404 (the checker
// is not enabled, or its route not mounted): the badge stays hidden and stops asking until
// the page is loaded again, since whether alerts are enabled changes only with a restart.
import { el } from "./dom.js";
import { ApiError, api } from "./api.js";

export const ALERTS_PATH = "/api/alerts";
// Open alerts asked for at most: the badge shows "LIMIT+" beyond.
export const ALERTS_LIMIT = 100;
export const POLL_MS = 60_000;

// The open alerts, newest first, or null when the server has no alerts (404, or an answer
// saying they are not enabled). Quiet: the caller shows a failure, or leaves it.
export async function openAlerts(options = {}) {
  try {
    const answer = await api.get(ALERTS_PATH, { status: "open", limit: ALERTS_LIMIT },
      { ...options, quiet: true });
    if (!answer || answer.enabled === false || !Array.isArray(answer.alerts)) return null;
    return answer.alerts;
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return null;
    throw error;
  }
}

// The badge: a link to the Overview reading "N alerts", hidden while there is none; its
// data-count is the count last read, its data-state "off" once the server said it has no
// alerts. refresh() asks again now; start() asks now and every POLL_MS until stop().
export function alertsBadge({ onOpen }) {
  const count = el("span", { className: "alerts-count" });
  const element = el("a", {
    href: "/ui/overview",
    testid: "alerts-badge",
    className: "alerts-badge",
    hidden: true,
    title: "open alerts: see the Overview",
    onclick: (event) => {
      if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
      event.preventDefault();
      onOpen();
    },
  }, count);
  let timer = null;
  let enabled = true;
  let asking = false;

  const show = (alerts) => {
    const n = alerts.length;
    element.hidden = n === 0;
    element.dataset.count = String(n);
    count.textContent = `${n >= ALERTS_LIMIT ? `${ALERTS_LIMIT}+` : n} alert${n === 1 ? "" : "s"}`;
  };

  async function refresh() {
    if (!enabled || asking) return;
    asking = true;
    try {
      const alerts = await openAlerts();
      if (alerts === null) {
        enabled = false;
        element.hidden = true;
        element.dataset.state = "off";
        stop();
      } else {
        show(alerts);
      }
    } catch (error) {
      // A refused key brings up the key prompt (api.js), an unavailable store passes: the
      // badge keeps what it showed and asks again at the next tick. Our own bugs surface.
      if (!(error instanceof ApiError)) throw error;
    } finally {
      asking = false;
    }
  }

  function stop() {
    if (timer !== null) clearInterval(timer);
    timer = null;
  }

  function start() {
    stop();
    if (!enabled) return;
    refresh();
    timer = setInterval(refresh, POLL_MS);
  }

  return { element, refresh, start, stop };
}
