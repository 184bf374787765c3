// The page tests/ui/test_js_client.py drives: one browser client, made from the URL's
// query (`server`: the log server's URL, `options`: the client's options as JSON), and
// helpers that log numbered series and keep their progress in localStorage, so a test can
// tell after a reload which records the page had confirmed as persisted.
import { createLogClient } from '/src/browser.js';

const params = new URLSearchParams(location.search);
const options = JSON.parse(params.get('options') || '{}');
const client = createLogClient(params.get('server'), { service: 'browser-test', environment: 'test', ...options });
window.logClient = client;

/**
 * Log records `series <i>` (field `seq`) from localStorage `next` up to `total`, one at a
 * time; after each, wait for `persisted()` and, when it says true, store `i` as
 * localStorage `confirmed`: every record up to `confirmed` is in IndexedDB.
 */
window.logSeries = async (total, padding = 0) => {
  const filler = 'x'.repeat(padding);
  for (let i = Number(localStorage.getItem('next') ?? 0); i < total; i = Number(localStorage.getItem('next'))) {
    localStorage.setItem('next', String(i + 1));
    client.info(`series ${i}`, { seq: i, filler });
    if (await client.persisted()) localStorage.setItem('confirmed', String(i));
  }
};

/** Log `messages` at INFO, each with the field `hostile` set to the message too. */
window.logAll = (messages) => {
  for (const message of messages) client.info(message, { hostile: message });
};

document.getElementById('status').textContent = 'ready';
window.pageReady = true;
