/**
 * What the browser client does with its page: send what is pending when the page goes
 * away, resume after the back/forward cache or a lost network, and optionally log the
 * page's uncaught errors.
 *
 * `pagehide` (and `visibilitychange` to hidden, the last event a mobile browser may give
 * before it discards a tab) sends the records the page logged and nobody acknowledged
 * yet with one keepalive request. Records not yet in IndexedDB go first: the next page of
 * the origin sends those already there anyway. `unload` is not used: it keeps a page out
 * of the back/forward cache and is not fired reliably.
 */

import { KEEPALIVE_BYTES } from './browser-sender.js';

/**
 * @typedef {object} PendingEntry
 * @property {string} body
 * @property {number} size
 * @property {number|undefined} id its row, once written
 * @property {object|null} queue the queue holding it, once written
 * @property {boolean} urgentSent already carried by a keepalive request
 */

/**
 * Entries to send before the page goes: not yet sent that way, within KEEPALIVE_BYTES,
 * the ones only in memory first.
 *
 * @param {PendingEntry[]} recent
 * @returns {PendingEntry[]}
 */
export function entriesToSendBeforeLeaving(recent) {
  const unsent = recent.filter((entry) => !entry.urgentSent);
  const ordered = [
    ...unsent.filter((entry) => !entry.queue?.durable),
    ...unsent.filter((entry) => entry.queue?.durable),
  ];
  const batch = [];
  let bytes = '{"logs":[]}'.length;
  for (const entry of ordered) {
    bytes += entry.size + 1;
    if (bytes > KEEPALIVE_BYTES) break;
    batch.push(entry);
  }
  return batch;
}

/**
 * Listen to the page's lifecycle for `client`.
 *
 * @param {{leaving: () => void, resume: () => void, online: () => void}} hooks
 * @returns {() => void} remove the listeners
 */
export function listenToPage(hooks) {
  const win = globalThis.window;
  const doc = globalThis.document;
  return listenAll([
    [win, 'pagehide', () => hooks.leaving()],
    [doc, 'visibilitychange', () => {
      if (doc.visibilityState === 'hidden') hooks.leaving();
    }],
    [win, 'pageshow', (event) => {
      // Back from the back/forward cache: what the keepalive request carried may not
      // have arrived, so the regular sender sends it again (the server deduplicates).
      if (event.persisted) hooks.resume();
    }],
    [win, 'online', () => hooks.online()],
  ]);
}

/**
 * Log the page's uncaught errors and unhandled rejections through `logError`. The
 * browser still reports them in the console as before (nothing is prevented).
 *
 * @param {(message: string, error: unknown, fields: object|undefined, caller: object|null) => void} logError
 * @returns {() => void} remove the listeners
 */
export function listenToErrors(logError) {
  const win = globalThis.window;
  return listenAll([
    [win, 'error', (event) => {
      const caller = event.filename ? { file_path: event.filename, line_no: event.lineno } : null;
      logError('Uncaught error', uncaughtError(event), { column: event.colno }, caller);
    }],
    [win, 'unhandledrejection', (event) => {
      logError('Unhandled promise rejection', event.reason, undefined, { function_name: '<promise>' });
    }],
  ]);
}

/**
 * The error of a window `error` event. A script of another origin gives no error object,
 * only "Script error." and where: an Error with that message and place stands in.
 */
function uncaughtError(event) {
  if (event.error !== undefined && event.error !== null) return event.error;
  const error = new Error(event.message || 'Script error.');
  error.stack = `    at ${event.filename || '<unknown>'}:${event.lineno ?? 0}:${event.colno ?? 0}`;
  return error;
}

function listenAll(listeners) {
  const added = listeners.filter(([target]) => target && typeof target.addEventListener === 'function');
  for (const [target, type, listener] of added) target.addEventListener(type, listener);
  return () => {
    for (const [target, type, listener] of added) target.removeEventListener(type, listener);
  };
}
