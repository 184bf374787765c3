/**
 * How the Node client reports its own trouble: a process warning of type
 * `LogCollectorWarning` (printed to stderr by Node unless the app handles `warning` events
 * or runs with --no-warnings), once per kind of trouble, never through the client itself.
 */

const WARNING_TYPE = 'LogCollectorWarning';
const warned = new Set();

/**
 * Emit `message` unless a warning with the same `key` was emitted before in this process.
 *
 * @param {string} key what kind of trouble this is
 * @param {string} message
 * @returns {boolean} whether it was emitted
 */
export function warnOnce(key, message) {
  if (warned.has(key)) return false;
  warned.add(key);
  warn(message);
  return true;
}

/**
 * Emit `message` as a `LogCollectorWarning`; never throws.
 *
 * @param {string} message
 */
export function warn(message) {
  try {
    process.emitWarning(message, { type: WARNING_TYPE });
  } catch {
    // a warning handler that throws must not reach the log call
  }
}

/**
 * Forget a kind of trouble, so it is reported again next time (after it cleared).
 *
 * @param {string} key
 */
export function clearWarning(key) {
  warned.delete(key);
}
